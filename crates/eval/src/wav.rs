//! WAV files: mono, 8/16/24/32-bit PCM or 32-bit float, read as f32 in [-1, 1].

use std::path::Path;

use crate::DataError;

/// The samples of a mono WAV file at `rate` Hz, as f32 in [-1, 1].
pub fn read_wav(path: &Path, rate: u32) -> Result<Vec<f32>, DataError> {
    let reader = hound::WavReader::open(path)
        .map_err(|e| DataError::file(path, format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    if spec.channels != 1 {
        return Err(DataError::file(
            path,
            format!("{} channels; only mono WAV files are read", spec.channels),
        ));
    }
    if spec.sample_rate != rate {
        return Err(DataError::file(
            path,
            format!(
                "sample rate {} Hz, but {rate} Hz is expected (resample it, or set the rate with --set sr=RATE)",
                spec.sample_rate
            ),
        ));
    }
    let bad = |e: hound::Error| DataError::file(path, format!("not a readable WAV file: {e}"));
    match spec.sample_format {
        hound::SampleFormat::Float if spec.bits_per_sample == 32 => reader
            .into_samples::<f32>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad),
        hound::SampleFormat::Int if (8..=32).contains(&spec.bits_per_sample) => {
            let full = (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 / full))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)
        }
        _ => Err(DataError::file(
            path,
            format!(
                "{}-bit {:?} samples are not supported (16-bit PCM or 32-bit float)",
                spec.bits_per_sample, spec.sample_format
            ),
        )),
    }
}

/// Start offsets of the frames of a signal of `len` samples: every `hop` while a whole
/// frame fits; a signal shorter than one frame gives one frame at 0 (zero-padded).
pub fn frame_starts(len: usize, frame: usize, hop: usize) -> Vec<usize> {
    if len < frame {
        return vec![0];
    }
    (0..=len - frame).step_by(hop.max(1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn reads_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        write(&p, 16000, 1, &[0, 16384, -32768]);
        assert_eq!(read_wav(&p, 16000).unwrap(), vec![0.0, 0.5, -1.0]);
        let e = read_wav(&p, 8000).unwrap_err().to_string();
        assert!(e.contains("a.wav") && e.contains("16000 Hz"), "{e}");
        let s = dir.path().join("s.wav");
        write(&s, 16000, 2, &[0, 0]);
        assert!(read_wav(&s, 16000)
            .unwrap_err()
            .to_string()
            .contains("mono"));
        let f = dir.path().join("f.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&f, spec).unwrap();
        w.write_sample(0.25f32).unwrap();
        w.finalize().unwrap();
        assert_eq!(read_wav(&f, 16000).unwrap(), vec![0.25]);
        let junk = dir.path().join("j.wav");
        std::fs::write(&junk, b"RIFFjunk").unwrap();
        assert!(read_wav(&junk, 16000)
            .unwrap_err()
            .to_string()
            .contains("j.wav"));
    }

    #[test]
    fn frames() {
        assert_eq!(frame_starts(10, 4, 4), vec![0, 4]);
        assert_eq!(frame_starts(10, 4, 2), vec![0, 2, 4, 6]);
        assert_eq!(frame_starts(3, 4, 4), vec![0]);
        assert_eq!(frame_starts(8, 4, 4), vec![0, 4]);
    }
}
