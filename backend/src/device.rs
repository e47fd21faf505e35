//! Opening the compute device a run asks for.
//!
//! CUDA is a cargo feature (`--features cuda`, see `scripts/cuda/build`): a binary built with
//! it needs the NVIDIA driver's libcuda at start-up even for CPU work, so the default build
//! stays CPU-only and says so clearly when a run asks for a GPU.

use balancelab_shared::{ComputeDevice, FieldError};
use candle_core::Device;

/// Whether this binary was built with CUDA support.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Rejects a device this build cannot drive, naming the config field. Whether the GPU is
/// really there is only known when [`open`] is called on the machine that trains.
pub fn check_supported(device: ComputeDevice) -> Result<(), FieldError> {
    if device.is_cuda() && !CUDA_BUILT {
        return Err(FieldError::new(
            "device",
            format!(
                "{device} requested, but this build of BalanceLab has no CUDA support \
                 (build it with --features cuda, see scripts/cuda/build)"
            ),
        ));
    }
    Ok(())
}

/// Opens the device, or explains why it cannot be used.
pub fn open(device: ComputeDevice) -> Result<Device, String> {
    check_supported(device).map_err(|e| e.to_string())?;
    match device {
        ComputeDevice::Cpu => Ok(Device::Cpu),
        ComputeDevice::Cuda(ordinal) => Device::new_cuda(ordinal)
            .map_err(|e| format!("device {device} could not be opened: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_always_opens() {
        assert!(open(ComputeDevice::Cpu).unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_on_a_cpu_build_names_the_field_and_the_fix() {
        let error = check_supported(ComputeDevice::Cuda(0)).unwrap_err();
        assert_eq!(error.field, "device");
        assert!(
            error.message.contains("--features cuda"),
            "{}",
            error.message
        );
        assert!(open(ComputeDevice::Cuda(0))
            .unwrap_err()
            .contains("no CUDA support"));
    }
}
