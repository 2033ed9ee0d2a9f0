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
            let v = verify_inclusion(
                &b64(&p.leaf_hash),
                p.leaf_idx,
                p.tree_size,
                &proof,
                &b64(&p.root),
            );
            (v, p.want_err, p.desc)
        } else if rel.starts_with("consistency/") {
            let p: ConsistencyProbe = serde_json::from_str(&text).unwrap();
            let proof: Vec<Vec<u8>> = p.proof.unwrap_or_default().iter().map(|h| b64(h)).collect();
            let v = verify_consistency(p.size1, p.size2, &proof, &b64(&p.root1), &b64(&p.root2));
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
