//! Where a run executes, the CPU or one CUDA GPU, and at what arithmetic precision.
//!
//! Devices are written as `"cpu"` or `"cuda:N"` (plain `"cuda"` means `"cuda:0"`), the
//! spelling PyTorch users already type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The device a run trains on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ComputeDevice {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl ComputeDevice {
    /// Whether it is a CUDA GPU.
    pub fn is_cuda(self) -> bool {
        matches!(self, Self::Cuda(_))
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("expected \"cpu\" or \"cuda:N\" (N a GPU number), got {s:?}");
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(ordinal) => ordinal.parse().map(Self::Cuda).map_err(|_| invalid()),
                None => Err(invalid()),
            },
        }
    }
}

impl TryFrom<String> for ComputeDevice {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ComputeDevice> for String {
    fn from(device: ComputeDevice) -> Self {
        device.to_string()
    }
}

/// The arithmetic of a run's matrix products and convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Float32 throughout, as PyTorch with `torch.backends.cuda.matmul.allow_tf32` and
    /// `torch.backends.cudnn.allow_tf32` both off.
    #[default]
    Fp32,
    /// Float32 values, with the GPU's matrix products (convolutions included) in TensorFloat-32:
    /// products of 10-bit mantissas, summed in float32. PyTorch's default for convolutions.
    /// GPU only.
    Tf32,
}

impl Precision {
    /// Every precision, in the order a form lists them.
    pub const ALL: [Self; 2] = [Self::Fp32, Self::Tf32];

    /// The precision named `name` in configurations.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Its name in configurations.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Tf32 => "tf32",
        }
    }
}

/// In JSON a device is its name, which the derive cannot see through `try_from`.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ComputeDevice {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^(cpu|cuda:[0-9]+)$"))
            .description(Some("`cpu`, or `cuda:N` for the CUDA GPU with ordinal N"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ComputeDevice {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pytorch_spellings() {
        assert_eq!("cpu".parse(), Ok(ComputeDevice::Cpu));
        assert_eq!("cuda".parse(), Ok(ComputeDevice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(ComputeDevice::Cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "CUDA:0", ""] {
            assert!(bad.parse::<ComputeDevice>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_as_a_string() {
        let json = serde_json::to_string(&ComputeDevice::Cuda(1)).unwrap();
        assert_eq!(json, "\"cuda:1\"");
        assert_eq!(
            serde_json::from_str::<ComputeDevice>(&json).unwrap(),
            ComputeDevice::Cuda(1)
        );
        let error = serde_json::from_str::<ComputeDevice>("\"tpu\"").unwrap_err();
        assert!(
            error.to_string().contains("expected \"cpu\" or \"cuda:N\""),
            "{error}"
        );
    }
}
