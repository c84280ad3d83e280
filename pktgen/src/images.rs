//! PNG/JPEG images turned into model input tensors.

use crate::error::Context;
use crate::tensor::Tensor;
use crate::{bail, Result};
use image::imageops::{self, FilterType};
use netml_wire::fragment::{Dtype, Layout};
use std::path::Path;

/// ImageNet channel means (RGB), the normalisation torchvision models expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How pixels become tensor elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// f32, NCHW `[1, 3, H, W]`, scaled to [0, 1] then normalised with ImageNet mean/std.
    F32Chw,
    /// u8, NHWC `[1, H, W, 3]`, raw RGB.
    U8Hwc,
}

impl std::str::FromStr for Format {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "f32-chw" => Format::F32Chw,
            "u8-hwc" => Format::U8Hwc,
            _ => bail!("unknown image format {s:?} (expected f32-chw or u8-hwc)"),
        })
    }
}

/// Parses "HxW" (e.g. "224x224").
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let parsed = s
        .split_once(['x', 'X'])
        .and_then(|(h, w)| Some((h.trim().parse().ok()?, w.trim().parse().ok()?)));
    match parsed {
        Some((h, w)) if h > 0 && w > 0 => Ok((h, w)),
        _ => bail!("bad size {s:?}: expected HxW like 224x224"),
    }
}

/// Decodes `path` (format guessed from its bytes), resizes to `height` x `width` (no crop:
/// the aspect ratio is not kept, which is what a fixed-size model input needs) and converts.
pub fn load(path: &Path, height: u32, width: u32, format: Format) -> Result<Tensor> {
    let img = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .context(path.display())?
        .decode()
        .context(path.display())?
        .to_rgb8();
    let img = if img.dimensions() == (width, height) {
        img
    } else {
        imageops::resize(&img, width, height, FilterType::Triangle)
    };
    let name = path.display().to_string();
    let (h, w) = (height as usize, width as usize);
    let raw = img.into_raw();
    match format {
        Format::U8Hwc => Tensor::new(
            name,
            Dtype::U8,
            Layout::Nhwc,
            vec![1, height, width, 3],
            raw,
        ),
        Format::F32Chw => {
            let mut data = vec![0u8; 3 * h * w * 4];
            for (p, px) in raw.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    let v = (px[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                    let at = (c * h * w + p) * 4;
                    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            Tensor::new(
                name,
                Dtype::F32,
                Layout::Nchw,
                vec![1, 3, height, width],
                data,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_formats() {
        assert_eq!(parse_size("224x200").unwrap(), (224, 200));
        assert!(parse_size("224").is_err());
        assert!(parse_size("0x5").is_err());
        assert_eq!("u8-hwc".parse::<Format>().unwrap(), Format::U8Hwc);
        assert!("rgb".parse::<Format>().is_err());
    }
}
