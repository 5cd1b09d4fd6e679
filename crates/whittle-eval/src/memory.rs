//! Peak memory of the process, from Linux's `/proc/self`: the high-water mark of its resident set.
//!
//! Writing `5` to `/proc/self/clear_refs` resets the mark (Linux 4.0 and later), so the peak of a
//! measurement is read as: reset, run, read `VmHWM`. This counts everything resident: the model's
//! weights, the runtime's intermediates and the program itself, which is what a deployment pays. On
//! other systems, or where the files cannot be read, there is no number rather than a wrong one.

use serde::Serialize;

/// A peak resident set size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeakMemory {
    pub bytes: u64,
    /// Whether the mark was reset before the measurement; if not, it covers the whole process life.
    pub since_reset: bool,
}

impl PeakMemory {
    /// Resets the high-water mark to the current resident size; `false` where that is not possible.
    pub fn reset() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// The high-water mark now; `None` where the system does not report it.
    pub fn read(since_reset: bool) -> Option<PeakMemory> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(PeakMemory { bytes: kib * 1024, since_reset })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::PeakMemory;

    #[test]
    fn the_peak_grows_with_a_large_touched_allocation() {
        let reset = PeakMemory::reset();
        let before = PeakMemory::read(reset).unwrap();
        // 64 MiB, every page written, so it is resident and not just reserved.
        let block = vec![1u8; 64 << 20];
        let after = PeakMemory::read(reset).unwrap();
        assert!(block.iter().step_by(4096).all(|&byte| byte == 1));
        assert!(after.bytes >= before.bytes + (60 << 20), "before {before:?}, after {after:?}");
    }
}
