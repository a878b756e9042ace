//! One vector interface over the three tiers, so that every elementwise kernel is
//! written once and compiled three times.
//!
//! The methods are `#[inline(always)]` and carry no target features themselves: a
//! kernel is generic over [`Simd`] and is instantiated inside a
//! `#[target_feature]` entry point, where the intrinsics inline. Calling an x86
//! implementation outside such an entry point (or on a CPU without the feature) is
//! undefined behaviour; the tier types are never handed out otherwise.

/// A vector of f32 lanes with the operations the elementwise kernels need.
///
/// `max`/`min` follow x86 `maxps`/`minps`: when either operand is NaN the second
/// one is returned.
pub(crate) trait Simd: Copy {
    /// A vector of `LANES` f32 values.
    type V: Copy;
    /// A lane mask, produced by comparisons.
    type M: Copy;
    /// Lanes per vector (at most 16).
    const LANES: usize;

    fn splat(x: f32) -> Self::V;
    /// # Safety
    /// `p` is valid for reading `LANES` values.
    unsafe fn load(p: *const f32) -> Self::V;
    /// # Safety
    /// `p` is valid for writing `LANES` values.
    unsafe fn store(p: *mut f32, v: Self::V);

    /// The first `n < LANES` values from `p`, zero in the other lanes.
    ///
    /// # Safety
    /// `p` is valid for reading `n` values.
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self::V {
        let mut buf = [0f32; 16];
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            Self::load(buf.as_ptr())
        }
    }

    /// Stores the first `n < LANES` lanes of `v` at `p`.
    ///
    /// # Safety
    /// `p` is valid for writing `n` values.
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, n: usize, v: Self::V) {
        let mut buf = [0f32; 16];
        unsafe {
            Self::store(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
        }
    }

    fn add(a: Self::V, b: Self::V) -> Self::V;
    fn sub(a: Self::V, b: Self::V) -> Self::V;
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c`, fused where the tier has FMA.
    fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn max(a: Self::V, b: Self::V) -> Self::V;
    fn min(a: Self::V, b: Self::V) -> Self::V;
    fn sqrt(a: Self::V) -> Self::V;
    fn abs(a: Self::V) -> Self::V;
    fn neg(a: Self::V) -> Self::V;
    fn floor(a: Self::V) -> Self::V;
    fn ceil(a: Self::V) -> Self::V;
    /// Rounds to the nearest integer, ties to even.
    fn round(a: Self::V) -> Self::V;
    fn lt(a: Self::V, b: Self::V) -> Self::M;
    fn eq(a: Self::V, b: Self::V) -> Self::M;
    fn is_nan(a: Self::V) -> Self::M;
    /// `t` where `m` is set, else `f`.
    fn select(m: Self::M, t: Self::V, f: Self::V) -> Self::V;
    /// `2^n` for lanes holding integers in `[-126, 127]`.
    fn pow2i(n: Self::V) -> Self::V;
    /// For positive normal `x`: `(e, m)` with `x = m·2^e`, `m` in `[0.5, 1)`.
    fn frexp(x: Self::V) -> (Self::V, Self::V);
    fn reduce_add(v: Self::V) -> f32;
    fn reduce_max(v: Self::V) -> f32;
}

/// Plain Rust, one lane; the loops it is used in are left to the compiler.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    type V = f32;
    type M = bool;
    const LANES: usize = 1;

    #[inline(always)]
    fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        unsafe { p.read() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        unsafe { p.write(v) }
    }
    #[inline(always)]
    fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        // Unfused: without FMA hardware `f32::mul_add` is a library call.
        a * b + c
    }
    #[inline(always)]
    fn max(a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn min(a: f32, b: f32) -> f32 {
        if a < b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn sqrt(a: f32) -> f32 {
        a.sqrt()
    }
    #[inline(always)]
    fn abs(a: f32) -> f32 {
        a.abs()
    }
    #[inline(always)]
    fn neg(a: f32) -> f32 {
        -a
    }
    #[inline(always)]
    fn floor(a: f32) -> f32 {
        a.floor()
    }
    #[inline(always)]
    fn ceil(a: f32) -> f32 {
        a.ceil()
    }
    #[inline(always)]
    fn round(a: f32) -> f32 {
        a.round_ties_even()
    }
    #[inline(always)]
    fn lt(a: f32, b: f32) -> bool {
        a < b
    }
    #[inline(always)]
    fn eq(a: f32, b: f32) -> bool {
        a == b
    }
    #[inline(always)]
    fn is_nan(a: f32) -> bool {
        a.is_nan()
    }
    #[inline(always)]
    fn select(m: bool, t: f32, f: f32) -> f32 {
        if m {
            t
        } else {
            f
        }
    }
    #[inline(always)]
    fn pow2i(n: f32) -> f32 {
        f32::from_bits(((n as i32 + 127) << 23) as u32)
    }
    #[inline(always)]
    fn frexp(x: f32) -> (f32, f32) {
        let b = x.to_bits();
        let e = ((b >> 23) & 0xff) as i32 - 126;
        (e as f32, f32::from_bits((b & 0x807f_ffff) | 0x3f00_0000))
    }
    #[inline(always)]
    fn reduce_add(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn reduce_max(v: f32) -> f32 {
        v
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// AVX2 + FMA, 8 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    /// AVX-512F, 16 lanes; tails use masked loads and stores.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    // SAFETY (every `unsafe` block below): these methods only run inside entry points
    // compiled with the tier's features, which the kernel table installs only after
    // detecting them (see the module documentation).
    impl Simd for Avx2 {
        type V = __m256;
        type M = __m256;
        const LANES: usize = 8;

        #[inline(always)]
        fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn div(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_div_ps(a, b) }
        }
        #[inline(always)]
        fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn max(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_min_ps(a, b) }
        }
        #[inline(always)]
        fn sqrt(a: __m256) -> __m256 {
            unsafe { _mm256_sqrt_ps(a) }
        }
        #[inline(always)]
        fn abs(a: __m256) -> __m256 {
            unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
        }
        #[inline(always)]
        fn neg(a: __m256) -> __m256 {
            unsafe { _mm256_xor_ps(_mm256_set1_ps(-0.0), a) }
        }
        #[inline(always)]
        fn floor(a: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn ceil(a: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn round(a: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn lt(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
        }
        #[inline(always)]
        fn eq(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
        }
        #[inline(always)]
        fn is_nan(a: __m256) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) }
        }
        #[inline(always)]
        fn select(m: __m256, t: __m256, f: __m256) -> __m256 {
            unsafe { _mm256_blendv_ps(f, t, m) }
        }
        #[inline(always)]
        fn pow2i(n: __m256) -> __m256 {
            unsafe {
                let i = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
                _mm256_castsi256_ps(_mm256_slli_epi32::<23>(i))
            }
        }
        #[inline(always)]
        fn frexp(x: __m256) -> (__m256, __m256) {
            unsafe {
                let b = _mm256_castps_si256(x);
                let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(b), _mm256_set1_epi32(126));
                let m = _mm256_or_si256(
                    _mm256_and_si256(b, _mm256_set1_epi32(0x007f_ffff)),
                    _mm256_set1_epi32(0x3f00_0000),
                );
                (_mm256_cvtepi32_ps(e), _mm256_castsi256_ps(m))
            }
        }
        #[inline(always)]
        fn reduce_add(v: __m256) -> f32 {
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
                _mm_cvtss_f32(s)
            }
        }
        #[inline(always)]
        fn reduce_max(v: __m256) -> f32 {
            unsafe {
                let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_max_ss(s, _mm_shuffle_ps::<1>(s, s));
                _mm_cvtss_f32(s)
            }
        }
    }

    impl Simd for Avx512 {
        type V = __m512;
        type M = __mmask16;
        const LANES: usize = 16;

        #[inline(always)]
        fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> __m512 {
            unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, n: usize, v: __m512) {
            unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v) }
        }
        #[inline(always)]
        fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn div(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_div_ps(a, b) }
        }
        #[inline(always)]
        fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn max(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_min_ps(a, b) }
        }
        #[inline(always)]
        fn sqrt(a: __m512) -> __m512 {
            unsafe { _mm512_sqrt_ps(a) }
        }
        #[inline(always)]
        fn abs(a: __m512) -> __m512 {
            unsafe { _mm512_abs_ps(a) }
        }
        #[inline(always)]
        fn neg(a: __m512) -> __m512 {
            unsafe {
                _mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(a),
                    _mm512_set1_epi32(i32::MIN),
                ))
            }
        }
        #[inline(always)]
        fn floor(a: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn ceil(a: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn round(a: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn lt(a: __m512, b: __m512) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
        }
        #[inline(always)]
        fn eq(a: __m512, b: __m512) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b) }
        }
        #[inline(always)]
        fn is_nan(a: __m512) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) }
        }
        #[inline(always)]
        fn select(m: __mmask16, t: __m512, f: __m512) -> __m512 {
            unsafe { _mm512_mask_blend_ps(m, f, t) }
        }
        #[inline(always)]
        fn pow2i(n: __m512) -> __m512 {
            unsafe {
                let i = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
                _mm512_castsi512_ps(_mm512_slli_epi32::<23>(i))
            }
        }
        #[inline(always)]
        fn frexp(x: __m512) -> (__m512, __m512) {
            unsafe {
                let b = _mm512_castps_si512(x);
                let e = _mm512_sub_epi32(_mm512_srli_epi32::<23>(b), _mm512_set1_epi32(126));
                let m = _mm512_or_si512(
                    _mm512_and_si512(b, _mm512_set1_epi32(0x007f_ffff)),
                    _mm512_set1_epi32(0x3f00_0000),
                );
                (_mm512_cvtepi32_ps(e), _mm512_castsi512_ps(m))
            }
        }
        #[inline(always)]
        fn reduce_add(v: __m512) -> f32 {
            unsafe { _mm512_reduce_add_ps(v) }
        }
        #[inline(always)]
        fn reduce_max(v: __m512) -> f32 {
            unsafe { _mm512_reduce_max_ps(v) }
        }
    }
}

/// Applies `f` to `n` values from `src` and writes them to `dst`, one vector at a
/// time, the tail through a partial vector. A macro rather than a function taking a
/// closure: closures are compiled without the entry point's target features, and the
/// intrinsics they call would then not inline.
///
/// Must be expanded in an `unsafe` context where `$src` is readable and `$dst`
/// writable for `$n` values, the two disjoint or equal.
macro_rules! map {
    ($S:ty, $src:expr, $dst:expr, $n:expr, |$v:ident| $body:expr) => {{
        let (src, dst, n): (*const f32, *mut f32, usize) = ($src, $dst, $n);
        let lanes = <$S as $crate::eltwise::simd::Simd>::LANES;
        let mut i = 0;
        while i + lanes <= n {
            let $v = <$S as $crate::eltwise::simd::Simd>::load(src.add(i));
            <$S as $crate::eltwise::simd::Simd>::store(dst.add(i), $body);
            i += lanes;
        }
        if i < n {
            let $v = <$S as $crate::eltwise::simd::Simd>::load_part(src.add(i), n - i);
            <$S as $crate::eltwise::simd::Simd>::store_part(dst.add(i), n - i, $body);
        }
    }};
}

pub(crate) use map;

/// Generates the three entry points of a kernel generic over [`Simd`]: `portable`,
/// and on x86-64 `avx2` (with FMA) and `avx512` (AVX-512F), in a module named after
/// the kernel. All three are `unsafe fn` with the kernel's own safety contract; the
/// x86 ones also need their CPU features.
macro_rules! simd_entries {
    ($kernel:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        pub(crate) mod $kernel {
            #[allow(unused_imports)]
            use super::*;

            pub(crate) unsafe fn portable($($arg: $ty),*) $(-> $ret)? {
                unsafe { super::$kernel::<$crate::eltwise::simd::Portable>($($arg),*) }
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            pub(crate) unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                unsafe { super::$kernel::<$crate::eltwise::simd::Avx2>($($arg),*) }
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            pub(crate) unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                unsafe { super::$kernel::<$crate::eltwise::simd::Avx512>($($arg),*) }
            }
        }
    };
}

pub(crate) use simd_entries;

/// Picks the entry point of a kernel generated by [`simd_entries`] for `tier`.
macro_rules! pick {
    ($($kernel:ident)::+, $tier:expr) => {{
        #[allow(unreachable_patterns)]
        match $tier {
            #[cfg(target_arch = "x86_64")]
            $crate::cpu::Tier::Avx512 => $($kernel)::+::avx512 as _,
            #[cfg(target_arch = "x86_64")]
            $crate::cpu::Tier::Avx2 => $($kernel)::+::avx2 as _,
            _ => $($kernel)::+::portable as _,
        }
    }};
}

pub(crate) use pick;
