//! `Unique`: distinct elements (or slices along an axis), sorted or in order of first
//! occurrence, with first-occurrence indices, inverse indices and counts.

use std::cmp::Ordering;

use slimnet_tensor::{match_data, Tensor};

use super::{axis_of, full_table, gather_tables, strides};
use crate::reference::util::reason;

/// Outputs: Y, indices, inverse_indices, counts.
pub fn unique(x: &Tensor, axis: Option<i64>, sorted: bool) -> Result<Vec<Tensor>, String> {
    let (view, a) = match axis {
        None => (x.clone().reshape(vec![x.len()]).map_err(reason)?, 0),
        Some(ax) => (x.clone(), axis_of(ax, x.rank())?),
    };
    let shape = view.shape().to_vec();
    let n = shape[a];
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a + 1..].iter().product();
    let order = match_data!(view.data(), v => sort_items(v, n, outer, inner), s => sort_items(s, n, outer, inner));
    // Groups of equal items, each as (first occurrence, count), in sorted order.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_of = vec![0usize; n];
    for (pos, &item) in order.iter().enumerate() {
        let same = pos > 0
            && match_data!(view.data(),
                v => items_cmp(v, order[pos - 1], item, n, outer, inner),
                s => items_cmp(s, order[pos - 1], item, n, outer, inner))
                == Ordering::Equal;
        if !same {
            groups.push((item, 0));
        }
        let g = groups.len() - 1;
        groups[g].1 += 1;
        group_of[item] = g;
    }
    let mut rank_of: Vec<usize> = (0..groups.len()).collect();
    if !sorted {
        let mut by_first: Vec<usize> = (0..groups.len()).collect();
        by_first.sort_by_key(|&g| groups[g].0);
        for (r, &g) in by_first.iter().enumerate() {
            rank_of[g] = r;
        }
        groups = by_first.iter().map(|&g| groups[g]).collect();
    }
    let st = strides(&shape);
    let mut tables: Vec<Vec<usize>> = shape
        .iter()
        .zip(&st)
        .map(|(&d, &s)| full_table(d, s))
        .collect();
    tables[a] = groups.iter().map(|&(first, _)| first * st[a]).collect();
    let y = gather_tables(&view, &tables)?;
    let ints = |v: Vec<i64>| Tensor::from_vec(vec![v.len()], v).map_err(reason);
    Ok(vec![
        y,
        ints(groups.iter().map(|&(f, _)| f as i64).collect())?,
        ints(group_of.iter().map(|&g| rank_of[g] as i64).collect())?,
        ints(groups.iter().map(|&(_, c)| c as i64).collect())?,
    ])
}

/// Orders values with NaN (the only value unequal to itself) after all others and
/// equal to other NaNs, like numpy's sort and unique.
fn total_cmp<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    #[allow(clippy::eq_op)]
    a.partial_cmp(b).unwrap_or_else(|| (a != a).cmp(&(b != b)))
}

/// Lexicographic comparison of items `i` and `j`, where item `k` is the elements at
/// `o * n * inner + k * inner + t` for `o < outer`, `t < inner`.
fn items_cmp<T: PartialOrd>(
    v: &[T],
    i: usize,
    j: usize,
    n: usize,
    outer: usize,
    inner: usize,
) -> Ordering {
    for o in 0..outer {
        for t in 0..inner {
            let base = o * n * inner + t;
            let c = total_cmp(&v[base + i * inner], &v[base + j * inner]);
            if c != Ordering::Equal {
                return c;
            }
        }
    }
    Ordering::Equal
}

/// Item numbers in sorted order; equal items keep their original order.
fn sort_items<T: PartialOrd>(v: &[T], n: usize, outer: usize, inner: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| items_cmp(v, i, j, n, outer, inner));
    order
}
