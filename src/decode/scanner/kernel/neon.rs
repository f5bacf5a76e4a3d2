//! The NEON mask kernel: the aarch64 baseline, 16 bytes per compare.

use std::arch::aarch64::{
    uint8x16_t, vandq_u8, vceqq_u8, vdupq_n_u8, vgetq_lane_u64, vld1q_u8, vorrq_u8, vpaddq_u8,
    vreinterpretq_u64_u8,
};

use super::{Masks, BLOCK};

/// NEON is part of every aarch64 CPU, so this kernel needs no detection.
pub struct Neon;

super::baseline_kernel!(Neon, "neon");

/// Bit i of each byte lane, to turn four compare results into 64 bits.
const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

/// simdjson's NEON movemask: weight each lane's byte with its bit, then three
/// rounds of pairwise addition pack 4 x 16 bytes into 64 bits.
///
/// # Safety
/// The CPU has NEON (the aarch64 baseline).
#[inline(always)]
unsafe fn bits(c: [uint8x16_t; 4], weights: uint8x16_t) -> u64 {
    let a = vpaddq_u8(vandq_u8(c[0], weights), vandq_u8(c[1], weights));
    let b = vpaddq_u8(vandq_u8(c[2], weights), vandq_u8(c[3], weights));
    let ab = vpaddq_u8(a, b);
    let ab = vpaddq_u8(ab, ab);
    vgetq_lane_u64::<0>(vreinterpretq_u64_u8(ab))
}

/// The masks with four 16-byte compares per class.
#[inline(always)]
pub fn classify(block: &[u8; BLOCK]) -> Masks {
    // SAFETY: NEON is part of the aarch64 baseline, so these intrinsics are
    // always available; each load reads 16 bytes at offset 0, 16, 32 or 48
    // of a 64-byte array, and `WEIGHTS` is 16 bytes.
    unsafe {
        let weights = vld1q_u8(WEIGHTS.as_ptr());
        let v = [0, 1, 2, 3].map(|lane| vld1q_u8(block.as_ptr().add(16 * lane)));
        let folded = v.map(|x| vorrq_u8(x, vdupq_n_u8(0x20)));
        let eq = |x: [uint8x16_t; 4], byte: u8| x.map(|x| vceqq_u8(x, vdupq_n_u8(byte)));
        Masks {
            quote: bits(eq(v, b'"'), weights),
            backslash: bits(eq(v, b'\\'), weights),
            open: bits(eq(folded, b'{'), weights),
            close: bits(eq(folded, b'}'), weights),
        }
    }
}
