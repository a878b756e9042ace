//! Image preprocessing: resize, center crop, scale, mean/std, channel order, layout.

use std::path::Path;

use image::imageops::FilterType;
use image::DynamicImage;
use slimnet_tensor::Tensor;

use crate::{DataError, InputSpec};

/// The largest image side a spec may ask for.
const MAX_SIDE: usize = 1 << 16;

/// How to resize an image before cropping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// To exactly `width` x `height`.
    Exact { width: usize, height: usize },
    /// So that the shorter side has this length, keeping the aspect ratio.
    Shorter(usize),
}

/// Channel order of a color image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

/// Memory layout of an image tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[1, channels, height, width]`.
    Nchw,
    /// `[1, height, width, channels]`.
    Nhwc,
}

/// How an image becomes a tensor: decode, grayscale or RGB, resize (bilinear), center
/// crop, then per channel `(pixel * scale - mean) / std`, in `order` and `layout`.
///
/// Unset fields have defaults: `resize` to the input's known height and width; `crop`
/// none; `scale` 1/255; `mean` 0; `std` 1; `order` rgb; `layout` nhwc when the input's
/// last dim is 1 or 3 and its second is not, else nchw; `grayscale` when the input's
/// channel dim is 1.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preprocess {
    pub resize: Option<Resize>,
    /// Center crop to `(width, height)`.
    pub crop: Option<(usize, usize)>,
    pub scale: Option<f32>,
    /// One value (for every channel) or one per channel.
    pub mean: Vec<f32>,
    /// One value (for every channel) or one per channel.
    pub std: Vec<f32>,
    pub order: ChannelOrder,
    pub layout: Option<Layout>,
    pub grayscale: Option<bool>,
}

impl Preprocess {
    /// Parses `resize=224x224,crop=224,mean=0.485:0.456:0.406,std=0.229:0.224:0.225,
    /// order=rgb,layout=nchw,scale=0.00392157,grayscale=true` (every key optional;
    /// `resize=256` resizes the shorter side; `crop=224` is square; `scale=1/255`).
    pub fn parse(spec: &str) -> Result<Preprocess, DataError> {
        let mut p = Preprocess::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| DataError::Spec(format!("preprocess: '{item}' is not KEY=VALUE")))?;
            p.set(key.trim(), value.trim())?;
        }
        Ok(p)
    }

    /// Reads a TOML file with the keys of [`Preprocess::parse`]: `resize = "224x224"` or
    /// `256`, `crop = 224` or `"224x192"`, `scale = 0.0039`, `mean = [0.485, 0.456,
    /// 0.406]`, `std = [...]`, `order = "bgr"`, `layout = "nhwc"`, `grayscale = true`.
    pub fn from_toml_file(path: &Path) -> Result<Preprocess, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::file(path, e))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| DataError::file(path, format!("not valid TOML: {e}")))?;
        let mut p = Preprocess::default();
        for (key, value) in &table {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::Integer(i) => Ok(i.to_string()),
                        toml::Value::Float(f) => Ok(f.to_string()),
                        _ => Err(DataError::file(path, format!("{key}: expected numbers"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(":"),
                _ => return Err(DataError::file(path, format!("{key}: unexpected value"))),
            };
            p.set(key, &text)
                .map_err(|e| DataError::file(path, e.to_string()))?;
        }
        Ok(p)
    }

    /// A spec given on the command line: a `.toml` file if it names one, else a string.
    pub fn from_arg(arg: &str) -> Result<Preprocess, DataError> {
        if arg.ends_with(".toml") {
            Preprocess::from_toml_file(Path::new(arg))
        } else {
            Preprocess::parse(arg)
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), DataError> {
        let bad = |what: &str| DataError::Spec(format!("preprocess: {key}={value}: {what}"));
        let size = |s: &str| -> Result<usize, DataError> {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n <= MAX_SIDE)
                .ok_or_else(|| bad("expected a size from 1 to 65536"))
        };
        let pair = |s: &str| -> Result<(usize, usize), DataError> {
            match s.split_once(['x', 'X']) {
                Some((w, h)) => Ok((size(w)?, size(h)?)),
                None => size(s).map(|n| (n, n)),
            }
        };
        let floats = |s: &str| -> Result<Vec<f32>, DataError> {
            s.split([':', ' '])
                .filter(|x| !x.is_empty())
                .map(|x| x.parse::<f32>().map_err(|_| bad("expected numbers")))
                .collect()
        };
        match key {
            "resize" => {
                self.resize = Some(if value.contains(['x', 'X']) {
                    let (width, height) = pair(value)?;
                    Resize::Exact { width, height }
                } else {
                    Resize::Shorter(size(value)?)
                })
            }
            "crop" => self.crop = Some(pair(value)?),
            "scale" => {
                let v = match value.split_once('/') {
                    Some((a, b)) => match (a.trim().parse::<f32>(), b.trim().parse::<f32>()) {
                        (Ok(a), Ok(b)) if b != 0.0 => a / b,
                        _ => return Err(bad("expected a number or A/B")),
                    },
                    None => value.parse().map_err(|_| bad("expected a number"))?,
                };
                self.scale = Some(v);
            }
            "mean" => self.mean = floats(value)?,
            "std" => {
                self.std = floats(value)?;
                if self.std.contains(&0.0) {
                    return Err(bad("std must not be 0"));
                }
            }
            "order" => {
                self.order = match value.to_ascii_lowercase().as_str() {
                    "rgb" => ChannelOrder::Rgb,
                    "bgr" => ChannelOrder::Bgr,
                    _ => return Err(bad("expected rgb or bgr")),
                }
            }
            "layout" => {
                self.layout = Some(match value.to_ascii_lowercase().as_str() {
                    "nchw" => Layout::Nchw,
                    "nhwc" => Layout::Nhwc,
                    _ => return Err(bad("expected nchw or nhwc")),
                })
            }
            "grayscale" | "gray" => {
                self.grayscale = Some(match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(bad("expected true or false")),
                })
            }
            _ => {
                return Err(DataError::Spec(format!(
                    "preprocess: unknown key '{key}' (keys: resize, crop, scale, mean, std, order, layout, grayscale)"
                )))
            }
        }
        Ok(())
    }

    /// The layout used for `input`.
    pub fn layout_for(&self, input: &InputSpec) -> Layout {
        if let Some(l) = self.layout {
            return l;
        }
        let s = &input.shape;
        let channels = |d: Option<usize>| matches!(d, Some(1) | Some(3));
        if s.len() == 4 && channels(s[3]) && !channels(s[1]) {
            Layout::Nhwc
        } else {
            Layout::Nchw
        }
    }

    /// Decodes and preprocesses the image at `path` for `input`.
    pub fn image_tensor(&self, path: &Path, input: &InputSpec) -> Result<Tensor, DataError> {
        let img = image::ImageReader::open(path)
            .map_err(|e| DataError::file(path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::file(path, e))?
            .decode()
            .map_err(|e| DataError::file(path, format!("not a readable image: {e}")))?;
        self.apply(img, input).map_err(|e| DataError::file(path, e))
    }

    /// Preprocesses a decoded image for `input`; the error is the reason only.
    pub fn apply(&self, img: DynamicImage, input: &InputSpec) -> Result<Tensor, String> {
        let layout = self.layout_for(input);
        let s = &input.shape;
        let (c_dim, h_dim, w_dim) = match layout {
            Layout::Nchw => (1, 2, 3),
            Layout::Nhwc => (3, 1, 2),
        };
        let known = |i: usize| if s.len() == 4 { s[i] } else { None };
        let gray = self.grayscale.unwrap_or(known(c_dim) == Some(1));
        let channels = if gray { 1 } else { 3 };
        let mut img = if gray {
            DynamicImage::ImageLuma8(img.to_luma8())
        } else {
            DynamicImage::ImageRgb8(img.to_rgb8())
        };
        let resize = self
            .resize
            .or(match (known(w_dim), known(h_dim), self.crop) {
                (Some(width), Some(height), None) => Some(Resize::Exact { width, height }),
                _ => None,
            });
        let (w0, h0) = (img.width() as usize, img.height() as usize);
        let target = match resize {
            None => None,
            Some(Resize::Exact { width, height }) => Some((width, height)),
            Some(Resize::Shorter(n)) => Some(if w0 <= h0 {
                (n, ((h0 * n) as f64 / w0 as f64).round().max(1.0) as usize)
            } else {
                (((w0 * n) as f64 / h0 as f64).round().max(1.0) as usize, n)
            }),
        };
        if let Some((w, h)) = target {
            if (w, h) != (w0, h0) {
                img = img.resize_exact(w as u32, h as u32, FilterType::Triangle);
            }
        }
        if let Some((cw, ch)) = self.crop {
            let (w, h) = (img.width() as usize, img.height() as usize);
            if cw > w || ch > h {
                return Err(format!("crop {cw}x{ch} is larger than the image ({w}x{h})"));
            }
            img = img.crop_imm(
                ((w - cw) / 2) as u32,
                ((h - ch) / 2) as u32,
                cw as u32,
                ch as u32,
            );
        }
        let (w, h) = (img.width() as usize, img.height() as usize);
        let per_channel = |v: &[f32], default: f32, what: &str| -> Result<Vec<f32>, String> {
            match v.len() {
                0 => Ok(vec![default; channels]),
                1 => Ok(vec![v[0]; channels]),
                n if n == channels => Ok(v.to_vec()),
                n => Err(format!("{what} has {n} values for {channels} channels")),
            }
        };
        let mean = per_channel(&self.mean, 0.0, "mean")?;
        let std = per_channel(&self.std, 1.0, "std")?;
        let scale = self.scale.unwrap_or(1.0 / 255.0);
        let pixels = img.as_bytes();
        let mut out = vec![0f32; channels * h * w];
        for y in 0..h {
            for x in 0..w {
                for c in 0..channels {
                    let src = if channels == 3 && self.order == ChannelOrder::Bgr {
                        2 - c
                    } else {
                        c
                    };
                    let v = pixels[(y * w + x) * channels + src] as f32;
                    let v = (v * scale - mean[c]) / std[c];
                    let dst = match layout {
                        Layout::Nchw => (c * h + y) * w + x,
                        Layout::Nhwc => (y * w + x) * channels + c,
                    };
                    out[dst] = v;
                }
            }
        }
        let shape = match layout {
            Layout::Nchw => vec![1, channels, h, w],
            Layout::Nhwc => vec![1, h, w, channels],
        };
        Tensor::from_vec(shape, out).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_tensor::DType;

    fn input(shape: &[Option<usize>]) -> InputSpec {
        InputSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn parses_strings() {
        let p = Preprocess::parse(
            "resize=224x200,crop=100,mean=0.5:0.25:0,std=2,order=bgr,layout=nhwc,scale=1/255",
        )
        .unwrap();
        assert_eq!(
            p.resize,
            Some(Resize::Exact {
                width: 224,
                height: 200
            })
        );
        assert_eq!(p.crop, Some((100, 100)));
        assert_eq!(p.mean, vec![0.5, 0.25, 0.0]);
        assert_eq!(p.std, vec![2.0]);
        assert_eq!(p.order, ChannelOrder::Bgr);
        assert_eq!(p.layout, Some(Layout::Nhwc));
        assert!((p.scale.unwrap() - 1.0 / 255.0).abs() < 1e-9);
        assert_eq!(
            Preprocess::parse("resize=256").unwrap().resize,
            Some(Resize::Shorter(256))
        );
        for bad in [
            "resize=0",
            "resize=99999999x2",
            "order=xyz",
            "foo=1",
            "mean=a",
            "std=0",
            "crop",
        ] {
            let e = Preprocess::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("preprocess"), "{bad}: {e}");
        }
    }

    #[test]
    fn parses_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "resize = 256\ncrop = \"224x192\"\nmean = [0.485, 0.456, 0.406]\nstd = [1, 2, 3]\nlayout = \"nchw\"\ngrayscale = false\n",
        )
        .unwrap();
        let p = Preprocess::from_arg(path.to_str().unwrap()).unwrap();
        assert_eq!(p.resize, Some(Resize::Shorter(256)));
        assert_eq!(p.crop, Some((224, 192)));
        assert_eq!(p.mean.len(), 3);
        assert_eq!(p.std, vec![1.0, 2.0, 3.0]);
        assert_eq!(p.grayscale, Some(false));
        std::fs::write(&path, "colour = 1\n").unwrap();
        let e = Preprocess::from_toml_file(&path).unwrap_err().to_string();
        assert!(e.contains("p.toml") && e.contains("colour"), "{e}");
    }

    #[test]
    fn applies_to_an_image() {
        // 4x2 RGB image: pixel (x, y) = (10x, 20y, 200).
        let img =
            image::RgbImage::from_fn(4, 2, |x, y| image::Rgb([10 * x as u8, 20 * y as u8, 200]));
        let img = DynamicImage::ImageRgb8(img);
        let p = Preprocess::parse("scale=1,mean=0:0:100,std=1:1:2,order=bgr").unwrap();
        let t = p
            .apply(img.clone(), &input(&[None, Some(3), None, None]))
            .unwrap();
        assert_eq!(t.shape(), &[1, 3, 2, 4]);
        let v = t.as_slice::<f32>().unwrap();
        // Channel 0 is blue: (200 - 0) / 1; channel 2 is red: (10x - 100) / 2.
        assert_eq!(v[0], 200.0);
        assert_eq!(v[2 * 8 + 3], (30.0 - 100.0) / 2.0);
        // Known H and W resize; a channel dim of 1 makes it grayscale; nhwc from the shape.
        let t = Preprocess::default()
            .apply(img.clone(), &input(&[None, Some(6), Some(8), Some(1)]))
            .unwrap();
        assert_eq!(t.shape(), &[1, 6, 8, 1]);
        assert!(t
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .all(|&x| (0.0..=1.0).contains(&x)));
        let t = Preprocess::parse("resize=4,crop=3x4")
            .unwrap()
            .apply(img, &input(&[None, Some(3), None, None]))
            .unwrap();
        assert_eq!(t.shape(), &[1, 3, 4, 3]);
    }
}
