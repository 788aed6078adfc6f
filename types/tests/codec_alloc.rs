//! Decoding must not let a small input make the decoder reserve a huge amount of memory.
//!
//! The codec bounds a sequence's declared count by `remaining bytes / T::MIN_SIZE` before
//! `Vec::with_capacity`, so the memory reserved up front is at most
//! `input_len * size_of::<T>() / T::MIN_SIZE`. This file measures the largest single allocation
//! made while decoding hostile inputs (a count as large as the input allows, followed by zeros)
//! with a thread-local tracking allocator.

use lanes_types::codec::Decode;
use lanes_types::{Block, Bytes, CheckpointCertificate, CommitCertificate, GenesisAsset, Hash};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Tracking;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Decodes `bytes` as `T` and returns the largest single allocation made meanwhile.
fn largest_allocation<T: Decode>(bytes: &[u8]) -> usize {
    LARGEST.with(|m| m.set(0));
    TRACKING.with(|on| on.set(true));
    let result = T::from_bytes(bytes);
    TRACKING.with(|on| on.set(false));
    drop(result);
    LARGEST.with(|m| m.get())
}

/// `prefix`, then a sequence count of `body / item` (the most that `body` zero bytes can hold
/// if each item takes `item` bytes), then `body` zero bytes.
fn hostile(prefix: &[u8], item: usize, body: usize) -> Vec<u8> {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&((body / item) as u32).to_be_bytes());
    bytes.resize(bytes.len() + body, 0);
    bytes
}

/// Up-front reservations may exceed the input by the ratio of a Rust value's size to its
/// smallest encoding (6x for `Vec<Bytes>`: 24-byte `Vec` headers for 4-byte empty items), but
/// not by more than this.
const MAX_RATIO: usize = 8;
const BODY: usize = 256 * 1024;

fn assert_bounded<T: Decode>(what: &str, bytes: &[u8]) {
    let largest = largest_allocation::<T>(bytes);
    assert!(
        largest <= MAX_RATIO * bytes.len() + 4096,
        "{what}: decoding {} bytes reserved {largest} bytes at once ({}x the input)",
        bytes.len(),
        largest / bytes.len()
    );
}

#[test]
fn the_tracker_sees_allocations() {
    // Sanity check of the harness: a successful decode of 1 MiB of bytes allocates 1 MiB.
    let bytes = hostile(&[], 1, 1 << 20);
    let largest = largest_allocation::<Bytes>(&bytes);
    assert!(largest >= 1 << 20, "tracker saw only {largest} bytes");
}

#[test]
fn sequences_of_primitives_and_opaque_bytes_are_bounded() {
    assert_bounded::<Vec<u8>>("Vec<u8>", &hostile(&[], 1, BODY));
    assert_bounded::<Vec<u64>>("Vec<u64>", &hostile(&[], 8, BODY));
    assert_bounded::<Vec<Hash>>("Vec<Hash>", &hostile(&[], 32, BODY));
    assert_bounded::<Vec<Bytes>>("Vec<Bytes>", &hostile(&[], 4, BODY));
    assert_bounded::<Vec<String>>("Vec<String>", &hostile(&[], 4, BODY));
    assert_bounded::<Vec<Option<u8>>>("Vec<Option<u8>>", &hostile(&[], 1, BODY));
    // A block's transactions are a Vec<Bytes>: header with an empty chain id, then the count.
    let header = [0u8; 4 + 8 + 32 + 8 + 4 + 8 + 32];
    assert_bounded::<Block>("Block", &hostile(&header, 4, BODY));
}

/// Sequences of `codec_struct!` types: the macro leaves `MIN_SIZE` at its default of 1, so the
/// count check admits one element per remaining byte; reserving `size_of::<T>()` bytes for each
/// up front would be 68x the input for certificate signatures and 144x for blocks.
#[test]
fn sequences_of_structs_are_bounded() {
    // view, height, block_hash, then the signatures.
    assert_bounded::<CommitCertificate>("CommitCertificate", &hostile(&[0; 8 + 8 + 32], 1, BODY));
    // height, block_hash, state_root, then the signatures.
    assert_bounded::<CheckpointCertificate>(
        "CheckpointCertificate",
        &hostile(&[0; 8 + 32 + 32], 1, BODY),
    );
    assert_bounded::<Vec<Block>>("Vec<Block>", &hostile(&[], 1, BODY));
    // An asset: empty symbol, then the balances.
    assert_bounded::<GenesisAsset>("GenesisAsset balances", &hostile(&[0; 4], 1, BODY));
}
