//! The portable mask kernel: eight bytes at a time in a `u64` (SWAR), for targets
//! without SSE2 or NEON, and tested everywhere.

use super::{Masks, BLOCK};

/// Plain integer arithmetic: runs on every CPU.
pub struct Portable;

super::baseline_kernel!(Portable, "portable");

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// One bit per byte of `word` that equals `byte` (bit i for byte i).
#[inline(always)]
fn eq_bits(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    // High bit of each byte: set iff that byte of x is non-zero (no carry
    // crosses bytes: (b & 0x7f) + 0x7f <= 0xfe).
    let nonzero = ((x & LOW7) + LOW7) | x;
    let zero = !nonzero & HIGH;
    // Gather the eight high bits: every product term lands on a distinct bit,
    // bit i of the top byte coming from byte i.
    (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The masks, one 8-byte word at a time.
#[inline(always)]
pub fn classify(block: &[u8; BLOCK]) -> Masks {
    let mut m = Masks::default();
    for (n, chunk) in block.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes);
        let folded = word | (ONES * 0x20);
        let shift = 8 * n;
        m.quote |= eq_bits(word, b'"') << shift;
        m.backslash |= eq_bits(word, b'\\') << shift;
        m.open |= eq_bits(folded, b'{') << shift;
        m.close |= eq_bits(folded, b'}') << shift;
    }
    m
}
