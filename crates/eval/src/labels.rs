//! Class labels given beside the data.

use std::path::Path;

use crate::arrays::read_npy_file;
use crate::DataError;

/// Reads labels, one per sample in sample order: a `.npy` integer array (any shape,
/// read flat), or a text file with one integer per line (blank lines and lines starting
/// with `#` are skipped).
pub fn read_labels(path: &Path) -> Result<Vec<i64>, DataError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        let t = read_npy_file(path)?;
        if !t.dtype().is_integer() {
            return Err(DataError::file(
                path,
                format!("labels must be integers, found {}", t.dtype().name()),
            ));
        }
        return t.to_i64_vec().map_err(|e| DataError::file(path, e));
    }
    let text = std::fs::read_to_string(path).map_err(|e| DataError::file(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            l.trim().parse::<i64>().map_err(|_| {
                DataError::file(
                    path,
                    format!("line {}: '{}' is not an integer", i + 1, l.trim()),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_tensor::{npy, Tensor};

    #[test]
    fn text_and_npy() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("l.txt");
        std::fs::write(&t, "3\n\n# comment\n 1 \n0\n").unwrap();
        assert_eq!(read_labels(&t).unwrap(), vec![3, 1, 0]);
        std::fs::write(&t, "3\nx\n").unwrap();
        let e = read_labels(&t).unwrap_err().to_string();
        assert!(e.contains("l.txt") && e.contains("line 2"), "{e}");
        let n = dir.path().join("l.npy");
        let y = Tensor::from_vec(vec![3], vec![4i32, 5, 6]).unwrap();
        npy::write_npy(&y, std::fs::File::create(&n).unwrap()).unwrap();
        assert_eq!(read_labels(&n).unwrap(), vec![4, 5, 6]);
        let y = Tensor::from_vec(vec![1], vec![0.5f32]).unwrap();
        npy::write_npy(&y, std::fs::File::create(&n).unwrap()).unwrap();
        assert!(read_labels(&n)
            .unwrap_err()
            .to_string()
            .contains("integers"));
    }
}
