//! The portable sgemm: an i-k-j loop whose inner loop runs along rows of `B` and `C`,
//! so that the compiler vectorizes it for the baseline target.

use super::{scale_c, SgemmShape};

/// `C = A·B + beta·C`; the contract is [`crate::KernelTable::sgemm`]'s, and `shape`
/// must have been checked against the slices.
pub(crate) fn sgemm(shape: &SgemmShape, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    let &SgemmShape {
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
    } = shape;
    scale_c(shape, beta, c);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    for i in 0..m {
        let c_row = &mut c[i * ldc..i * ldc + n];
        let a_row = &a[i * lda..i * lda + k];
        for (p, &aip) in a_row.iter().enumerate() {
            let b_row = &b[p * ldb..p * ldb + n];
            for (cj, &bj) in c_row.iter_mut().zip(b_row) {
                *cj += aip * bj;
            }
        }
    }
}
