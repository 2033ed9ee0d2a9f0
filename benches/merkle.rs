//! Merkle log throughput on a log of 1,000,000 leaves: appends per second, root and proof
//! generation per second (from stored subtree hashes), and proof verification.

#![expect(clippy::expect_used, reason = "a benchmark stops on a broken setup")]
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use custody::{MemoryHashStore, MerkleLog, leaf_hash, verify_consistency, verify_inclusion};

/// Log size the issue asks for.
const LEAVES: u64 = 1_000_000;

fn entry(i: u64) -> [u8; 64] {
    // A record is ~1.5 KiB, but the leaf hash cost is one SHA-256 pass over it; a fixed
    // 64-byte entry isolates the tree work.
    let mut e = [0u8; 64];
    e[..8].copy_from_slice(&i.to_be_bytes());
    e
}

fn full_log() -> MerkleLog<MemoryHashStore> {
    let mut log = MerkleLog::open(MemoryHashStore::default()).expect("memory store");
    for i in 0..LEAVES {
        log.append(&entry(i)).expect("memory store");
    }
    log
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("merkle-1M");
    g.throughput(Throughput::Elements(LEAVES));
    g.sample_size(10);
    g.bench_function("append 1,000,000 leaves", |b| {
        b.iter(|| black_box(full_log().size()));
    });
    g.finish();

    let log = full_log();
    let mut g = c.benchmark_group("merkle-1M-proofs");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("inclusion proof", |b| {
        b.iter(|| {
            i = (i + 7919) % LEAVES;
            black_box(log.inclusion_proof(i, LEAVES).expect("in range"))
        });
    });
    let mut j = 1u64;
    g.bench_function("consistency proof", |b| {
        b.iter(|| {
            j = j % (LEAVES - 1) + 7919;
            black_box(
                log.consistency_proof(j.min(LEAVES - 1), LEAVES)
                    .expect("in range"),
            )
        });
    });
    g.bench_function("root at size", |b| {
        b.iter(|| {
            i = (i + 7919) % LEAVES + 1;
            black_box(log.root_at(i).expect("in range"))
        });
    });
    let root = log.root_at(LEAVES).expect("in range");
    g.bench_function("verify inclusion", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % LEAVES;
                (i, log.inclusion_proof(i, LEAVES).expect("in range"))
            },
            |(i, proof)| {
                verify_inclusion(&leaf_hash(&entry(i)), i, LEAVES, &proof, &root)
                    .expect("verifies");
            },
            BatchSize::SmallInput,
        );
    });
    let old = log.root_at(333_333).expect("in range");
    let proof = log.consistency_proof(333_333, LEAVES).expect("in range");
    g.bench_function("verify consistency", |b| {
        b.iter(|| verify_consistency(333_333, LEAVES, &proof, &old, &root).expect("verifies"));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
