//! The AVX-512BW mask kernel: one 64-byte compare per class, straight into mask
//! registers. Picked at run time.

use std::arch::x86_64::{
    _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_or_si512, _mm512_set1_epi8,
};

use super::avx2::{clmul_prefix_xor, Avx2};
use super::{Masks, BLOCK};

/// AVX-512F/BW on top of everything [`Avx2`] needs.
pub struct Avx512;

super::detected_kernel!(
    Avx512,
    "avx512",
    Avx2::available()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
);

/// The masks with one 64-byte compare per class.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub unsafe fn classify(block: &[u8; BLOCK]) -> Masks {
    // SAFETY: 64 bytes of a 64-byte array.
    let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
    let folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
    Masks {
        quote: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'"' as i8)),
        backslash: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\\' as i8)),
        open: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'{' as i8)),
        close: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'}' as i8)),
    }
}
