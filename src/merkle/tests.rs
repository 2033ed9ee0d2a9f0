//! Merkle tests against the transparency-dev vectors in `tests/data/merkle`
//! (override the folder with `MERKLE_TESTDATA`).

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;
use serde::Deserialize;

use super::*;

fn testdata() -> PathBuf {
    std::env::var_os("MERKLE_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/merkle"),
        PathBuf::from,
    )
}

fn b64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProbe {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyProbe {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// The top-level files with their own schema, each checked by its own test.
const TABLE_FILES: [&str; 3] = [
    "proof-tables.json",
    "reference-tree.json",
    "signed-note-vectors.json",
];

#[test]
fn every_probe_under_the_testdata_folder_gives_the_expected_verdict() {
    let root = testdata();
    let mut files = Vec::new();
    json_files(&root, &mut files);
    files.sort();
    let (mut probes, mut failures) = (0, Vec::new());
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(path).unwrap();
        let (verdict, want_err, desc) = if rel.starts_with("inclusion/") {
            let p: InclusionProbe = serde_json::from_str(&text).unwrap();
            let proof: Vec<Vec<u8>> = p.proof.unwrap_or_default().iter().map(|h| b64(h)).collect();
            let (leaf, root) = (b64(&p.leaf_hash), b64(&p.root));
            let v = verify_inclusion(&leaf, p.leaf_idx, p.tree_size, &proof, &root);
            let go = go_reference::verify_inclusion(p.leaf_idx, p.tree_size, &leaf, &proof, &root);
            assert_eq!(go.is_err(), p.want_err, "the reference port on {rel}");
            (v, p.want_err, p.desc)
        } else if rel.starts_with("consistency/") {
            let p: ConsistencyProbe = serde_json::from_str(&text).unwrap();
            let proof: Vec<Vec<u8>> = p.proof.unwrap_or_default().iter().map(|h| b64(h)).collect();
            let (root1, root2) = (b64(&p.root1), b64(&p.root2));
            let v = verify_consistency(p.size1, p.size2, &proof, &root1, &root2);
            let go = go_reference::verify_consistency(p.size1, p.size2, &proof, &root1, &root2);
            assert_eq!(go.is_err(), p.want_err, "the reference port on {rel}");
            (v, p.want_err, p.desc)
        } else {
            assert!(
                TABLE_FILES.contains(&rel.as_str()),
                "unknown JSON file {rel}: no test reads it"
            );
            continue;
        };
        probes += 1;
        if verdict.is_err() != want_err {
            failures.push(format!(
                "{rel} ({desc}): wantErr {want_err}, got {verdict:?}"
            ));
        }
    }
    assert!(
        probes > 100,
        "only {probes} probes found under {}",
        root.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {probes} probes failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Deserialize)]
struct ReferenceTree {
    hasher_vectors: Vec<serde_json::Value>,
    leaf_inputs_hex: Vec<String>,
    node_hashes_by_level: Vec<Vec<String>>,
    root_hashes_by_tree_size: Vec<String>,
}

fn reference() -> ReferenceTree {
    serde_json::from_str(&fs::read_to_string(testdata().join("reference-tree.json")).unwrap())
        .unwrap()
}

fn reference_log(n: usize) -> MerkleLog<MemoryHashStore> {
    let mut log = MerkleLog::open(MemoryHashStore::default()).unwrap();
    for leaf in reference().leaf_inputs_hex.iter().take(n) {
        log.append(&hex::decode(leaf).unwrap()).unwrap();
    }
    log
}

#[test]
fn hashers_match_the_rfc6962_vectors() {
    for v in reference().hasher_vectors {
        let want = v["want"].as_str().unwrap();
        let hex_of = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
        let got = match v["op"].as_str().unwrap() {
            "empty_root" => empty_root(),
            "leaf" => leaf_hash(&hex_of("input_hex")),
            "node" => node_hash(&hex_of("left_hex"), &hex_of("right_hex")),
            op => panic!("unknown hasher op {op}"),
        };
        assert_eq!(hex::encode(got), want, "{}", v["desc"]);
    }
}

#[test]
fn roots_and_stored_nodes_match_the_reference_tree_for_sizes_0_to_8() {
    let reference = reference();
    let log = reference_log(8);
    for (size, want) in reference.root_hashes_by_tree_size.iter().enumerate() {
        assert_eq!(
            hex::encode(log.root_at(size as u64).unwrap()),
            *want,
            "size {size}"
        );
    }
    for (level, nodes) in reference.node_hashes_by_level.iter().enumerate() {
        for (index, want) in nodes.iter().enumerate() {
            let got = log
                .store()
                .get(u32::try_from(level).unwrap(), index as u64)
                .unwrap()
                .unwrap();
            assert_eq!(hex::encode(got), *want, "node ({level}, {index})");
        }
    }
}

#[test]
fn generated_proofs_equal_the_proofgen_tables() {
    #[derive(Deserialize)]
    struct Incl {
        leaf_index_1based: u64,
        tree_size: u64,
        proof: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Cons {
        size1: u64,
        size2: u64,
        proof: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Tables {
        inclusion: Vec<Incl>,
        consistency: Vec<Cons>,
    }
    let tables: Tables =
        serde_json::from_str(&fs::read_to_string(testdata().join("proof-tables.json")).unwrap())
            .unwrap();
    let log = reference_log(8);
    for t in tables.inclusion {
        let got = log
            .inclusion_proof(t.leaf_index_1based - 1, t.tree_size)
            .unwrap();
        assert_eq!(got.iter().map(hex::encode).collect::<Vec<_>>(), t.proof);
    }
    for t in tables.consistency {
        let got = log.consistency_proof(t.size1, t.size2).unwrap();
        assert_eq!(got.iter().map(hex::encode).collect::<Vec<_>>(), t.proof);
    }
}

#[test]
fn requests_outside_the_log_are_errors() {
    let log = reference_log(5);
    assert!(log.inclusion_proof(5, 5).is_err());
    assert!(log.inclusion_proof(0, 6).is_err());
    assert!(log.consistency_proof(0, 3).is_err());
    assert!(log.consistency_proof(4, 3).is_err());
    assert!(log.root_at(6).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn every_generated_proof_verifies_and_a_flipped_bit_does_not(
        size in 1u64..300, a in any::<u64>(), b in any::<u64>(), bit in 0usize..256,
    ) {
        let mut log = MerkleLog::open(MemoryHashStore::default()).unwrap();
        for i in 0..size {
            log.append(&i.to_be_bytes()).unwrap();
        }
        let size2 = 1 + b % size;
        let size1 = 1 + a % size2;
        let index = a % size2;
        let root2 = log.root_at(size2).unwrap();
        let proof = log.inclusion_proof(index, size2).unwrap();
        let leaf = leaf_hash(&index.to_be_bytes());
        prop_assert!(verify_inclusion(&leaf, index, size2, &proof, &root2).is_ok());
        let root1 = log.root_at(size1).unwrap();
        let cons = log.consistency_proof(size1, size2).unwrap();
        prop_assert!(verify_consistency(size1, size2, &cons, &root1, &root2).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let at = bit % bad.len();
            bad[at][bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(&leaf, index, size2, &bad, &root2).is_err());
        }
        if !cons.is_empty() {
            let mut bad = cons.clone();
            let at = bit % bad.len();
            bad[at][bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(size1, size2, &bad, &root1, &root2).is_err());
        }
    }
}

/// The reference verifier's algorithm (transparency-dev/merkle `proof/verify.go`),
/// written out again for the differential tests: proofs split into an inner part and a
/// border at the point where the paths to `index` and `size - 1` diverge, hashes taken as
/// the bytes they are. Independent of [`verify_inclusion`] and [`verify_consistency`],
/// which walk RFC 9162's loop instead.
mod go_reference {
    use sha2::{Digest as _, Sha256};

    fn children(left: &[u8], right: &[u8]) -> Vec<u8> {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .to_vec()
    }

    /// (inner, border): proof lengths below and above the divergence point.
    fn decompose(index: u64, size: u64) -> (usize, usize) {
        let inner = 64 - (index ^ (size - 1)).leading_zeros();
        let border = index.checked_shr(inner).unwrap_or(0).count_ones();
        (inner as usize, border as usize)
    }

    fn inner(seed: Vec<u8>, proof: &[Vec<u8>], index: u64) -> Vec<u8> {
        proof.iter().enumerate().fold(seed, |seed, (i, h)| {
            if (index >> i) & 1 == 0 {
                children(&seed, h)
            } else {
                children(h, &seed)
            }
        })
    }

    fn inner_right(seed: Vec<u8>, proof: &[Vec<u8>], index: u64) -> Vec<u8> {
        proof.iter().enumerate().fold(seed, |seed, (i, h)| {
            if (index >> i) & 1 == 1 {
                children(h, &seed)
            } else {
                seed
            }
        })
    }

    fn border_right(seed: Vec<u8>, proof: &[Vec<u8>]) -> Vec<u8> {
        proof.iter().fold(seed, |seed, h| children(h, &seed))
    }

    pub fn verify_inclusion(
        index: u64,
        size: u64,
        leaf: &[u8],
        proof: &[Vec<u8>],
        root: &[u8],
    ) -> Result<(), &'static str> {
        if index >= size {
            return Err("index beyond size");
        }
        if leaf.len() != 32 {
            return Err("leaf hash size");
        }
        let (inner_len, border_len) = decompose(index, size);
        if proof.len() != inner_len + border_len {
            return Err("proof size");
        }
        let r = border_right(
            inner(leaf.to_vec(), &proof[..inner_len], index),
            &proof[inner_len..],
        );
        if r == root {
            Ok(())
        } else {
            Err("root mismatch")
        }
    }

    pub fn verify_consistency(
        size1: u64,
        size2: u64,
        proof: &[Vec<u8>],
        root1: &[u8],
        root2: &[u8],
    ) -> Result<(), &'static str> {
        if size2 < size1 {
            return Err("size2 < size1");
        }
        if size1 == size2 {
            if !proof.is_empty() {
                return Err("equal sizes, proof not empty");
            }
            return if root1 == root2 {
                Ok(())
            } else {
                Err("root mismatch")
            };
        }
        if size1 == 0 {
            return Err("from the empty tree");
        }
        if proof.is_empty() {
            return Err("empty proof");
        }
        let (inner_len, border_len) = decompose(size1 - 1, size2);
        let shift = size1.trailing_zeros() as usize;
        let inner_len = inner_len - shift;
        let (seed, start) = if size1 == 1 << shift {
            (root1.to_vec(), 0)
        } else {
            (proof[0].clone(), 1)
        };
        if proof.len() != start + inner_len + border_len {
            return Err("proof size");
        }
        let proof = &proof[start..];
        let mask = (size1 - 1) >> shift;
        let hash1 = border_right(
            inner_right(seed.clone(), &proof[..inner_len], mask),
            &proof[inner_len..],
        );
        if hash1 != root1 {
            return Err("root1 mismatch");
        }
        let hash2 = border_right(inner(seed, &proof[..inner_len], mask), &proof[inner_len..]);
        if hash2 == root2 {
            Ok(())
        } else {
            Err("root2 mismatch")
        }
    }
}

/// A hash of `len` bytes from `seed`: the unexpected lengths included.
fn odd_hash(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// How a test breaks a good proof before both verifiers judge it.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Size(u64),
    Index(u64),
    Drop(usize),
    Extend(usize),
    Replace(usize, usize),
    Root(usize),
    OtherRoot(usize),
    EqualRoots(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::None),
        (0u64..70).prop_map(Mutation::Size),
        (0u64..70).prop_map(Mutation::Index),
        any::<usize>().prop_map(Mutation::Drop),
        (0usize..40).prop_map(Mutation::Extend),
        (any::<usize>(), 0usize..40).prop_map(|(a, b)| Mutation::Replace(a, b)),
        (0usize..40).prop_map(Mutation::Root),
        (0usize..40).prop_map(Mutation::OtherRoot),
        (0usize..40).prop_map(Mutation::EqualRoots),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    /// Good and broken inclusion proofs, sizes 0 to 70, hashes of any length: the same
    /// verdict as the reference verifier, every time.
    #[test]
    fn inclusion_verdicts_equal_the_reference_verifier(
        size in 1u64..64, index in any::<u64>(), m in mutation(), seed in any::<u64>(),
    ) {
        let mut log = MerkleLog::open(MemoryHashStore::default()).unwrap();
        for i in 0..size {
            log.append(&i.to_be_bytes()).unwrap();
        }
        let index = index % size;
        let mut proof: Vec<Vec<u8>> = log.inclusion_proof(index, size).unwrap().iter().map(|h| h.to_vec()).collect();
        let mut leaf = leaf_hash(&index.to_be_bytes()).to_vec();
        let mut root = log.root_at(size).unwrap().to_vec();
        let (mut index, mut size) = (index, size);
        match m {
            Mutation::None | Mutation::OtherRoot(_) | Mutation::EqualRoots(_) => {}
            Mutation::Size(n) => size = n,
            Mutation::Index(n) => index = n,
            Mutation::Drop(at) => { if !proof.is_empty() { proof.remove(at % proof.len()); } }
            Mutation::Extend(len) => proof.push(odd_hash(seed, len)),
            Mutation::Replace(at, len) => { if !proof.is_empty() { let n = proof.len(); proof[at % n] = odd_hash(seed, len); } }
            Mutation::Root(len) => root = odd_hash(seed, len),
        }
        if let Mutation::OtherRoot(len) = m { leaf = odd_hash(seed, len); }
        let ours = verify_inclusion(&leaf, index, size, &proof, &root);
        let go = go_reference::verify_inclusion(index, size, &leaf, &proof, &root);
        prop_assert_eq!(ours.is_ok(), go.is_ok(), "{:?} vs {:?} for {:?}", ours, go, m);
    }

    /// Good and broken consistency proofs, equal sizes and size 0 included, roots and
    /// hashes of any length: the same verdict as the reference verifier, every time.
    #[test]
    fn consistency_verdicts_equal_the_reference_verifier(
        size2 in 1u64..64, a in any::<u64>(), m in mutation(), seed in any::<u64>(),
    ) {
        let mut log = MerkleLog::open(MemoryHashStore::default()).unwrap();
        for i in 0..size2 {
            log.append(&i.to_be_bytes()).unwrap();
        }
        let size1 = 1 + a % size2;
        let mut proof: Vec<Vec<u8>> = log.consistency_proof(size1, size2).unwrap().iter().map(|h| h.to_vec()).collect();
        let mut root1 = log.root_at(size1).unwrap().to_vec();
        let mut root2 = log.root_at(size2).unwrap().to_vec();
        let (mut size1, mut size2) = (size1, size2);
        match m {
            Mutation::None => {}
            Mutation::Size(n) => size1 = n,
            Mutation::Index(n) => size2 = n,
            Mutation::Drop(at) => { if !proof.is_empty() { proof.remove(at % proof.len()); } }
            Mutation::Extend(len) => proof.push(odd_hash(seed, len)),
            Mutation::Replace(at, len) => { if !proof.is_empty() { let n = proof.len(); proof[at % n] = odd_hash(seed, len); } }
            Mutation::Root(len) => root1 = odd_hash(seed, len),
            Mutation::OtherRoot(len) => root2 = odd_hash(seed, len),
            Mutation::EqualRoots(len) => {
                size2 = size1;
                root1 = odd_hash(seed, len);
                root2.clone_from(&root1);
                if seed % 2 == 0 { proof.clear(); }
                if seed % 3 == 0 { size1 = 0; size2 = 0; }
            }
        }
        let ours = verify_consistency(size1, size2, &proof, &root1, &root2);
        let go = go_reference::verify_consistency(size1, size2, &proof, &root1, &root2);
        prop_assert_eq!(ours.is_ok(), go.is_ok(), "{:?} vs {:?} for {:?}", ours, go, m);
    }
}

/// Inputs the reference accepts that a 32-byte-only reading would refuse: identical
/// checkpoints of equal size (even 0) whatever their roots' length, and an old root of
/// another length under a complete subtree. Both verifiers give the same verdicts.
#[test]
fn the_reference_verdicts_on_odd_lengths_and_equal_sizes_are_kept() {
    let none: [Vec<u8>; 0] = [];
    assert!(verify_consistency(0, 0, &none, b"", b"").is_ok());
    assert!(verify_consistency(5, 5, &none, b"abc", b"abc").is_ok());
    assert!(verify_consistency(5, 5, &none, b"abc", b"abd").is_err());
    assert!(verify_consistency(5, 5, &[vec![0u8; 32]], b"abc", b"abc").is_err());
    assert!(verify_consistency(0, 3, &[vec![0u8; 32]], &[0; 32], &[0; 32]).is_err());
    // size1 = 4 is a complete subtree of size2 = 8: the old root is the seed as given.
    let odd_root1 = b"five!".to_vec();
    let sibling = vec![9u8; 32];
    let root2 = node_hash(&odd_root1, &sibling);
    let proof = [sibling];
    assert!(verify_consistency(4, 8, &proof, &odd_root1, &root2).is_ok());
    assert!(go_reference::verify_consistency(4, 8, &proof, &odd_root1, &root2).is_ok());
}
