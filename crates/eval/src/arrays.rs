//! `.npy` and `.npz` files.

use std::io::{Read, Seek, Write};
use std::path::Path;

use slimnet_tensor::{npy, Tensor};

use crate::DataError;

/// Reads a `.npy` file.
pub fn read_npy_file(path: &Path) -> Result<Tensor, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::file(path, e))?;
    npy::read_npy(std::io::BufReader::new(file))
        .map_err(|e| DataError::file(path, format!("not a readable .npy file: {e}")))
}

/// Reads every array of a `.npz` file (a zip of `.npy` files, stored or deflated), keyed
/// by name without the `.npy` suffix, in archive order.
pub fn read_npz_file(path: &Path) -> Result<Vec<(String, Tensor)>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::file(path, e))?;
    read_npz(std::io::BufReader::new(file), path)
}

fn read_npz(reader: impl Read + Seek, path: &Path) -> Result<Vec<(String, Tensor)>, DataError> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| DataError::file(path, format!("not a readable .npz file: {e}")))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| DataError::file(path, format!("not a readable .npz file: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        let t = npy::read_npy(std::io::BufReader::new(entry))
            .map_err(|e| DataError::file(path, format!("array '{key}': {e}")))?;
        out.push((key, t));
    }
    Ok(out)
}

/// Writes arrays as a `.npz` file (deflated), as numpy's `savez_compressed` does; the
/// file is written to a temporary name beside `path` and renamed.
pub fn write_npz_file(path: &Path, arrays: &[(String, Tensor)]) -> Result<(), DataError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut bytes);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, t) in arrays {
            let mut buf = Vec::new();
            npy::write_npy(t, &mut buf)
                .map_err(|e| DataError::file(path, format!("array '{name}': {e}")))?;
            zip.start_file(format!("{name}.npy"), options)
                .and_then(|()| zip.write_all(&buf).map_err(Into::into))
                .map_err(|e| DataError::file(path, e))?;
        }
        zip.finish().map_err(|e| DataError::file(path, e))?;
    }
    let tmp = path.with_extension(format!("npz.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes.into_inner()).map_err(|e| DataError::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::file(path, e)
    })
}

/// Sample `index` along axis 0 of `array` (rank reduced by one).
pub(crate) fn slice_axis0(array: &Tensor, index: usize) -> Result<Tensor, String> {
    let shape = array.shape();
    let Some((&n, rest)) = shape.split_first() else {
        return Err("a scalar has no sample axis".into());
    };
    if index >= n {
        return Err(format!("sample {index} is out of range ({n} samples)"));
    }
    let size: usize = rest.iter().product();
    let data = array.data().gather(index * size..(index + 1) * size);
    Tensor::new(rest.to_vec(), data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npz_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        let x = Tensor::from_vec(vec![2, 3], vec![1f32, 2., 3., 4., 5., 6.]).unwrap();
        let y = Tensor::from_vec(vec![2], vec![7i64, 8]).unwrap();
        write_npz_file(
            &path,
            &[("x".into(), x.clone()), ("labels".into(), y.clone())],
        )
        .unwrap();
        let back = read_npz_file(&path).unwrap();
        assert_eq!(
            back,
            vec![("x".to_string(), x.clone()), ("labels".to_string(), y)]
        );
        let row = slice_axis0(&x, 1).unwrap();
        assert_eq!(row.shape(), &[3]);
        assert_eq!(row.as_slice::<f32>().unwrap(), &[4., 5., 6.]);
        assert!(slice_axis0(&x, 2).is_err());
    }

    #[test]
    fn npz_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npz");
        std::fs::write(&path, b"not a zip").unwrap();
        let e = read_npz_file(&path).unwrap_err().to_string();
        assert!(e.contains("bad.npz") && !e.contains('\n'), "{e}");
        let e = read_npy_file(&dir.path().join("missing.npy"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.npy"), "{e}");
    }
}
