//! The SSE2 mask kernel: the x86_64 baseline, 16 bytes per compare.

use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
};

use super::{Masks, BLOCK};

/// SSE2 is part of every x86_64 CPU, so this kernel needs no detection.
pub struct Sse2;

super::baseline_kernel!(Sse2, "sse2");

/// The masks with four 16-byte compares per class.
#[inline(always)]
pub fn classify(block: &[u8; BLOCK]) -> Masks {
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are
    // always available; each unaligned load reads 16 bytes at offset 0, 16,
    // 32 or 48 of a 64-byte array.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let open = _mm_set1_epi8(b'{' as i8);
        let close = _mm_set1_epi8(b'}' as i8);
        let fold = _mm_set1_epi8(0x20);
        for lane in 0..BLOCK / 16 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * lane).cast::<__m128i>());
            let folded = _mm_or_si128(v, fold);
            let shift = 16 * lane;
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << shift;
            m.quote |= bits(_mm_cmpeq_epi8(v, quote));
            m.backslash |= bits(_mm_cmpeq_epi8(v, backslash));
            m.open |= bits(_mm_cmpeq_epi8(folded, open));
            m.close |= bits(_mm_cmpeq_epi8(folded, close));
        }
    }
    m
}
