//! The chunker: equal to the reference FastCDC 2020 with the public gear
//! table, stable across read sizes, and keyed in practice.

mod common;

use std::io::Read;

use ferry_store::{Chunker, ChunkerParams, Keys, MasterKey};
use md5::{Digest, Md5};
use proptest::prelude::*;

/// The public FastCDC gear table: high 8 bytes (big-endian) of MD5 of 64
/// copies of each byte value, as the reference implementation makes it.
fn public_gear() -> [u64; 256] {
    let mut g = [0u64; 256];
    for (i, e) in g.iter_mut().enumerate() {
        let d = Md5::digest([i as u8; 64]);
        *e = u64::from_be_bytes(d[..8].try_into().unwrap());
    }
    g
}

#[test]
fn equals_reference_fastcdc_2020_with_public_table() {
    let data = common::random_bytes(7, 3 << 20);
    for (min, avg, max) in [(2048u32, 8192u32, 32768u32), (16384, 65536, 262144), (256 << 10, 1 << 20, 4 << 20)] {
        let ours = Chunker::new(&public_gear(), ChunkerParams { min, avg, max }).unwrap().cut_all(&data);
        let reference: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, min, avg, max).map(|c| c.length).collect();
        assert_eq!(ours, reference, "params {min}/{avg}/{max}");
        assert!(ours.len() > 2, "too few chunks to compare for {avg}");
    }
}

#[test]
fn keyed_gear_moves_cut_points() {
    let data = common::random_bytes(8, 1 << 20);
    let p = ChunkerParams { min: 2048, avg: 8192, max: 32768 };
    let a = Chunker::new(Keys::derive(&MasterKey::from_bytes([1; 32])).gear(), p).unwrap().cut_all(&data);
    let b = Chunker::new(Keys::derive(&MasterKey::from_bytes([2; 32])).gear(), p).unwrap().cut_all(&data);
    let public = Chunker::new(&public_gear(), p).unwrap().cut_all(&data);
    assert_ne!(a, b);
    assert_ne!(a, public);
}

#[test]
fn chunk_sizes_respect_bounds() {
    let data = common::random_bytes(9, 2 << 20);
    let p = ChunkerParams { min: 2048, avg: 8192, max: 32768 };
    let cuts = Chunker::new(Keys::derive(&MasterKey::from_bytes([3; 32])).gear(), p).unwrap().cut_all(&data);
    let (last, rest) = cuts.split_last().unwrap();
    assert!(rest.iter().all(|&n| (2048..=32768).contains(&n)));
    assert!(*last <= 32768);
    let avg = data.len() / cuts.len();
    assert!((4096..=16384).contains(&avg), "average {avg} far from 8192");
}

/// A reader that returns at most the given sizes, cycling.
struct Jagged<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Jagged<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sizes[self.i % self.sizes.len()].min(buf.len()).min(self.data.len());
        self.i += 1;
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn stream_equals_one_shot_for_any_read_sizes(
        seed in any::<u64>(),
        len in 0usize..300_000,
        sizes in proptest::collection::vec(1usize..70_000, 1..8),
    ) {
        let data = common::random_bytes(seed, len);
        let c = Chunker::new(Keys::derive(&MasterKey::from_bytes([4; 32])).gear(), ChunkerParams { min: 2048, avg: 8192, max: 32768 }).unwrap();
        let one_shot = c.cut_all(&data);
        let streamed: Vec<Vec<u8>> = c.stream(Jagged { data: &data, sizes, i: 0 }).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(streamed.iter().map(Vec::len).collect::<Vec<_>>(), one_shot);
        prop_assert_eq!(streamed.concat(), data);
    }

    /// A size hint (a file's stat, which may be stale) sizes the buffer
    /// only: the cuts are the same whether it is right, short or long.
    #[test]
    fn a_size_hint_never_changes_the_cuts(
        seed in any::<u64>(),
        len in 0usize..120_000,
        hint in prop_oneof![Just(None), (0u64..150_000).prop_map(Some)],
        sizes in proptest::collection::vec(1usize..70_000, 1..8),
    ) {
        let data = common::random_bytes(seed, len);
        let c = Chunker::new(Keys::derive(&MasterKey::from_bytes([4; 32])).gear(), ChunkerParams { min: 2048, avg: 8192, max: 32768 }).unwrap();
        let one_shot = c.cut_all(&data);
        for hint in [hint, Some(len as u64)] {
            let streamed: Vec<Vec<u8>> = c.stream_sized(Jagged { data: &data, sizes: sizes.clone(), i: 0 }, hint).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(streamed.iter().map(Vec::len).collect::<Vec<_>>(), one_shot.clone());
            prop_assert_eq!(streamed.concat(), data.clone());
        }
    }
}
