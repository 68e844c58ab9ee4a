//! The VGG16 convolutional trunk: its 13 layers and their names.

use crate::Error;
use std::fmt;
use std::str::FromStr;

/// The 13 convolutions of VGG16 as `(block, index, in_channels, out_channels)`.
pub const VGG16_CONVS: [(u8, u8, usize, usize); 13] = [
    (1, 1, 3, 64),
    (1, 2, 64, 64),
    (2, 1, 64, 128),
    (2, 2, 128, 128),
    (3, 1, 128, 256),
    (3, 2, 256, 256),
    (3, 3, 256, 256),
    (4, 1, 256, 512),
    (4, 2, 512, 512),
    (4, 3, 512, 512),
    (5, 1, 512, 512),
    (5, 2, 512, 512),
    (5, 3, 512, 512),
];

/// The BGR means subtracted from 0–255 pixels (Caffe convention).
pub const BGR_MEAN: [f32; 3] = [103.939, 116.779, 123.68];

/// A feature layer: `convB_I` (before the ReLU) or `reluB_I` (after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layer {
    /// Position of the convolution in [`VGG16_CONVS`] (0 for conv1_1).
    pub conv: usize,
    /// `true` for `reluB_I`, `false` for `convB_I`.
    pub relu: bool,
}

impl Layer {
    /// The block (1–5) this layer's convolution belongs to.
    pub fn block(self) -> u8 {
        VGG16_CONVS[self.conv].0
    }

    /// Output channels.
    pub fn channels(self) -> usize {
        VGG16_CONVS[self.conv].3
    }

    /// The convolution's name, `convB_I`.
    pub fn conv_name(conv: usize) -> String {
        let (b, i, _, _) = VGG16_CONVS[conv];
        format!("conv{b}_{i}")
    }

    /// The pixel stride of this layer's maps: 2^(block − 1).
    pub fn stride(self) -> usize {
        1 << (self.block() - 1)
    }

    /// How far, in image pixels, this layer sees beyond its own cell: a feature
    /// at cell (i, j) depends on the pixels within `radius` of rows
    /// [i·stride, (i+1)·stride) and columns likewise. Each 3×3 convolution widens
    /// it by its block's stride; 2×2/2 pooling merges aligned cells and adds nothing.
    pub fn radius(self) -> usize {
        VGG16_CONVS[..=self.conv].iter().map(|c| 1usize << (c.0 - 1)).sum()
    }

    /// The smallest image side that still leaves this layer at least 1×1
    /// (pooling floors, as in PyTorch).
    pub fn min_side(self) -> usize {
        1 << (self.block() - 1)
    }
}

impl serde::Serialize for Layer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Layer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, i, _, _) = VGG16_CONVS[self.conv];
        write!(f, "{}{b}_{i}", if self.relu { "relu" } else { "conv" })
    }
}

impl FromStr for Layer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let unknown = || Error::UnknownLayer(s.to_string());
        let (relu, rest) = if let Some(r) = s.strip_prefix("relu") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("conv") {
            (false, r)
        } else {
            return Err(unknown());
        };
        let (b, i) = rest.split_once('_').ok_or_else(unknown)?;
        let (b, i): (u8, u8) = (b.parse().map_err(|_| unknown())?, i.parse().map_err(|_| unknown())?);
        let conv = VGG16_CONVS.iter().position(|&(cb, ci, _, _)| (cb, ci) == (b, i)).ok_or_else(unknown)?;
        Ok(Layer { conv, relu })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for name in ["conv1_1", "relu4_2", "relu5_3", "conv3_3"] {
            assert_eq!(name.parse::<Layer>().unwrap().to_string(), name);
        }
        for bad in ["relu6_1", "relu1_3", "pool1", "relu4", "conv_1", ""] {
            assert!(matches!(bad.parse::<Layer>(), Err(Error::UnknownLayer(_))), "{bad}");
        }
        assert_eq!("relu5_1".parse::<Layer>().unwrap().min_side(), 16);
        assert_eq!("relu1_1".parse::<Layer>().unwrap().radius(), 1);
        assert_eq!("relu2_1".parse::<Layer>().unwrap().radius(), 4);
        assert_eq!("relu5_1".parse::<Layer>().unwrap().radius(), 58);
        assert_eq!("conv5_3".parse::<Layer>().unwrap().radius(), 90);
    }
}
