//! The AVX2 mask kernel: 32 bytes per compare, and the prefix XOR as one
//! carry-less multiply (PCLMULQDQ). Picked at run time.

use std::arch::x86_64::{
    __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
    _mm256_set1_epi8, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set1_epi8, _mm_set_epi64x,
};

use super::{Masks, BLOCK};

/// AVX2 with POPCNT, LZCNT, BMI1 and PCLMULQDQ (the scan loop is compiled with
/// all of them, see the scanner's dispatch).
pub struct Avx2;

super::detected_kernel!(
    Avx2,
    "avx2",
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("popcnt")
        && is_x86_feature_detected!("lzcnt")
        && is_x86_feature_detected!("bmi1")
        && is_x86_feature_detected!("pclmulqdq")
);

/// The masks with two 32-byte compares per class.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn classify(block: &[u8; BLOCK]) -> Masks {
    // SAFETY: 32 bytes at offset 0 of a 64-byte array.
    let lo = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
    // SAFETY: 32 bytes at offset 32 of a 64-byte array.
    let hi = unsafe { _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>()) };
    let fold = _mm256_set1_epi8(0x20);
    let (flo, fhi) = (_mm256_or_si256(lo, fold), _mm256_or_si256(hi, fold));
    let bits = |a: __m256i, b: __m256i, byte: u8| {
        let needle = _mm256_set1_epi8(byte as i8);
        let a = _mm256_movemask_epi8(_mm256_cmpeq_epi8(a, needle)) as u32;
        let b = _mm256_movemask_epi8(_mm256_cmpeq_epi8(b, needle)) as u32;
        u64::from(a) | (u64::from(b) << 32)
    };
    Masks {
        quote: bits(lo, hi, b'"'),
        backslash: bits(lo, hi, b'\\'),
        open: bits(flo, fhi, b'{'),
        close: bits(flo, fhi, b'}'),
    }
}

/// Prefix XOR as a carry-less multiplication by all ones.
///
/// # Safety
/// The CPU has PCLMULQDQ.
#[target_feature(enable = "pclmulqdq")]
#[inline]
pub unsafe fn clmul_prefix_xor(x: u64) -> u64 {
    let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
    _mm_cvtsi128_si64(product) as u64
}
