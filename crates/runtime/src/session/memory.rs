//! The memory plan: every planned activation buffer gets an offset in one arena,
//! reusing space by liveness.

/// A buffer to place: its size in elements and the steps it is live over (both ends
/// included: a buffer read by step `t` and one written by step `t` overlap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub len: usize,
    pub first: usize,
    pub last: usize,
}

/// Offsets are multiples of this many f32 elements (64 bytes), so every buffer starts
/// on a cache line.
pub(crate) const ALIGN: usize = 16;

/// Places buffers so that two whose lifetimes overlap never share an element, and
/// returns each buffer's offset and the arena length needed.
///
/// Largest buffers are placed first, each at the lowest offset that fits between
/// the already-placed buffers whose lifetimes overlap its own (greedy by size, the
/// usual heuristic of inference runtimes).
pub(crate) fn place(buffers: &[Lifetime]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].len), buffers[i].first, i));
    let mut offsets = vec![0usize; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut total = 0usize;
    for &i in &order {
        let b = buffers[i];
        let size = b.len.div_ceil(ALIGN) * ALIGN;
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].first <= b.last && b.first <= buffers[j].last)
            .map(|&j| {
                (
                    offsets[j],
                    offsets[j] + buffers[j].len.div_ceil(ALIGN) * ALIGN,
                )
            })
            .collect();
        busy.sort_unstable();
        let mut offset = 0usize;
        for (start, end) in busy {
            if offset + size <= start {
                break;
            }
            offset = offset.max(end);
        }
        offsets[i] = offset;
        total = total.max(offset + size);
        placed.push(i);
    }
    (offsets, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_chain_reuses_two_buffers() {
        let chain: Vec<Lifetime> = (0..6)
            .map(|t| Lifetime {
                len: 100,
                first: t,
                last: t + 1,
            })
            .collect();
        let (offsets, total) = place(&chain);
        assert_eq!(total, 2 * 112);
        for w in offsets.windows(2) {
            assert_ne!(w[0], w[1]);
        }
    }

    proptest! {
        #[test]
        fn overlapping_buffers_never_share_elements(
            spec in proptest::collection::vec((1usize..500, 0usize..20, 0usize..6), 0..40)
        ) {
            let buffers: Vec<Lifetime> = spec
                .iter()
                .map(|&(len, first, span)| Lifetime { len, first, last: first + span })
                .collect();
            let (offsets, total) = place(&buffers);
            for (i, a) in buffers.iter().enumerate() {
                prop_assert!(offsets[i] % ALIGN == 0);
                prop_assert!(offsets[i] + a.len <= total);
                for (j, b) in buffers.iter().enumerate().skip(i + 1) {
                    if a.first <= b.last && b.first <= a.last {
                        let disjoint = offsets[i] + a.len <= offsets[j]
                            || offsets[j] + b.len <= offsets[i];
                        prop_assert!(disjoint, "buffers {i} and {j} overlap");
                    }
                }
            }
            let peak: usize = (0..26)
                .map(|t| buffers.iter().filter(|b| b.first <= t && t <= b.last)
                    .map(|b| b.len.div_ceil(ALIGN) * ALIGN).sum::<usize>())
                .max()
                .unwrap_or(0);
            prop_assert!(total >= peak);
        }
    }
}
