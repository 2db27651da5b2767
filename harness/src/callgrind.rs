//! Callgrind client requests, issued from Rust the way `valgrind.h` issues
//! them, so that building buslab needs no C header, no bindgen and no
//! libclang.
//!
//! A client request is a sequence of instructions that does nothing on a
//! real CPU and that valgrind's translator recognises: it then reads a
//! block of six words — the request code and five arguments — from the
//! address in one register and writes the request's result to another.
//! The instruction pass brackets its measured region with
//! [`zero_stats`] and [`dump_stats_at`]; [`running_on_valgrind`] says
//! whether anyone is listening. On a target without a sequence here
//! (neither x86_64 nor aarch64) every request does nothing and returns the
//! value a native run returns.
//!
//! The codes and sequences are copied from valgrind 3.19's
//! `valgrind.h` (`VALGRIND_DO_CLIENT_REQUEST_EXPR` for `PLAT_amd64_linux`
//! and `PLAT_arm64_linux`) and `callgrind.h` (`Vg_CallgrindClientRequest`),
//! which the headers mark as a stable ABI ("DO NOT CHANGE THE ORDER OF
//! THESE ENTRIES").
//!
//! # Safety
//!
//! The private `request` holds the `unsafe` asm block (one per
//! architecture). Its argument:
//! - *On a real CPU the sequence has no effect but on the flags.* x86_64:
//!   `rol rdi` by 3, 13, 61 and 51 bits rotates `rdi` by 128 bits, a
//!   multiple of 64, so `rdi` ends as it began; `xchg rbx, rbx` swaps a
//!   register with itself. aarch64: `ror x12` by 3, 13, 51 and 61 bits is
//!   again 128 bits; `orr x10, x10, x10` writes `x10` with its own value.
//!   Nothing reads or writes memory or the stack (`nostack`). The result
//!   register (`rdx`, `x3`) is an `inout` operand loaded with the default,
//!   so natively the request returns the default. `asm!` assumes the flags
//!   clobbered unless told otherwise (`valgrind.h`'s `"cc"`).
//! - *Under valgrind the request reads what we hand it, and nothing else.*
//!   The address register (`rax`, `x4`) points to a `[usize; 6]` local that
//!   lives until the block ends (on x86_64 it may sit in the red zone below
//!   the stack pointer, as it does when GCC compiles `valgrind.h`; valgrind
//!   reads it there and pushes nothing on the guest stack). The block is not `nomem`, so the compiler
//!   writes the array to memory before the asm runs and forgets what it
//!   knew about memory after it (`valgrind.h`'s `"memory"` clobber); that
//!   also keeps the requests in program order with the measured code.
//!   The one request with a pointer argument, [`dump_stats_at`], takes a
//!   `&CStr`: valgrind reads a NUL-terminated string that is borrowed,
//!   hence valid, for the call. Callgrind changes no guest register but
//!   the result one.
//!
//! Hence the functions are safe to call, from any thread, with or without
//! valgrind.

use std::ffi::CStr;

/// `VG_USERREQ_TOOL_BASE(a, b)`: the first request code of a tool.
const fn tool_base(a: u8, b: u8) -> usize {
    ((a as usize) << 24) | ((b as usize) << 16)
}

/// `VG_USERREQ__RUNNING_ON_VALGRIND`, a core request.
const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `VG_USERREQ__DUMP_STATS`: callgrind's first request, ('C','T') for its
/// old name, Calltree; the others follow it in `callgrind.h`'s order.
const DUMP_STATS: usize = tool_base(b'C', b'T');
/// `VG_USERREQ__ZERO_STATS`.
const ZERO_STATS: usize = DUMP_STATS + 1;
/// `VG_USERREQ__DUMP_STATS_AT`.
const DUMP_STATS_AT: usize = DUMP_STATS + 3;
/// `VG_USERREQ__START_INSTRUMENTATION`.
const START_INSTRUMENTATION: usize = DUMP_STATS + 4;

/// How many valgrinds this process runs under: 0 natively, 1 under
/// valgrind (any tool), more when valgrind runs under valgrind.
#[must_use]
pub fn running_on_valgrind() -> usize {
    request(0, RUNNING_ON_VALGRIND, 0)
}

/// Sets callgrind's event counters to zero: what follows is what the next
/// dump counts. Does nothing outside callgrind.
#[inline(always)]
pub fn zero_stats() {
    request(0, ZERO_STATS, 0);
}

/// Writes callgrind's counters since the last zeroing or dump to a new
/// dump file whose `desc: Trigger: Client Request: ` line ends with
/// `name`, and zeroes them. Does nothing outside callgrind.
#[inline(always)]
pub fn dump_stats_at(name: &CStr) {
    request(0, DUMP_STATS_AT, name.as_ptr() as usize);
}

/// Switches callgrind's instrumentation on, in a process started with it
/// off (`--instr-atstart=no`): until then the program runs at valgrind's
/// plain speed, uncounted and outside the cache simulator (callgrind's
/// own measure: several times faster). Does nothing outside callgrind, or
/// when instrumentation is already on.
#[inline(always)]
pub fn start_instrumentation() {
    request(0, START_INSTRUMENTATION, 0);
}

/// `VALGRIND_DO_CLIENT_REQUEST_EXPR(default, code, arg1, 0, 0, 0, 0)`:
/// the request's result under valgrind, `default` natively.
#[inline(always)]
fn request(default: usize, code: usize, arg1: usize) -> usize {
    let block: [usize; 6] = [code, arg1, 0, 0, 0, 0];
    #[cfg(target_arch = "x86_64")]
    {
        let result;
        // SAFETY: see the module doc: no effect natively but on the flags;
        // under valgrind, reads `block` (alive until this function returns)
        // and, for `DUMP_STATS_AT`, the borrowed C string it points to.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                inout("rdx") default => result,
                in("rax") block.as_ptr(),
                options(nostack),
            );
        }
        result
    }
    #[cfg(target_arch = "aarch64")]
    {
        let result;
        // SAFETY: as for x86_64 above.
        unsafe {
            std::arch::asm!(
                "ror x12, x12, #3",
                "ror x12, x12, #13",
                "ror x12, x12, #51",
                "ror x12, x12, #61",
                "orr x10, x10, x10",
                inout("x3") default => result,
                in("x4") block.as_ptr(),
                options(nostack),
            );
        }
        result
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = block;
        default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Set in the child that the valgrind test starts.
    const CHILD: &str = "BUSLAB_CALLGRIND_TEST_CHILD";
    /// The dump name the child writes.
    const NAME: &CStr = c"buslab-callgrind-test";

    #[test]
    fn requests_are_harmless_natively() {
        assert_eq!(running_on_valgrind(), 0, "this test runs outside valgrind");
        // Bracketing work as the instruction pass does changes nothing.
        let mut sum = 0u64;
        zero_stats();
        for i in 0..1_000u64 {
            sum = std::hint::black_box(sum.wrapping_add(i));
        }
        dump_stats_at(NAME);
        assert_eq!(sum, 499_500);
        assert_eq!(request(7, RUNNING_ON_VALGRIND, 0), 7, "natively a request returns its default");
    }

    /// Under callgrind: the process knows it, `zero_stats` drops what ran
    /// before it, and `dump_stats_at` writes a dump with its name. The test
    /// binary runs itself under valgrind; skipped where valgrind is not
    /// installed.
    #[test]
    fn requests_reach_callgrind() {
        if std::env::var_os(CHILD).is_some() {
            // The child, under callgrind: a million additions, dropped by
            // `zero_stats`, then a dump of (nearly) nothing.
            assert!(running_on_valgrind() >= 1, "the child runs under valgrind");
            let mut sum = 0u64;
            for i in 0..1_000_000u64 {
                sum = std::hint::black_box(sum.wrapping_add(i));
            }
            assert_eq!(sum, 499_999_500_000);
            zero_stats();
            dump_stats_at(NAME);
            return;
        }
        let Some(dump) = run_under_callgrind("callgrind::tests::requests_reach_callgrind", &[]) else { return };
        let counts = crate::runner::parse_callgrind(&dump, 1, false).expect("a readable dump");
        // Without the zeroing the dump would hold the million additions
        // (several million instructions).
        assert!(counts.ir_per_event < 1_000.0, "zero_stats did not zero: {} Ir in the dump", counts.ir_per_event);
    }

    /// Under callgrind started with its instrumentation off, nothing is
    /// counted until `start_instrumentation`, and what follows it is.
    #[test]
    fn instrumentation_starts_on_request() {
        const LOOP: u64 = 100_000;
        let add = |n: u64| (0..n).fold(0u64, |sum, i| std::hint::black_box(sum.wrapping_add(i)));
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(add(1_000_000), 499_999_500_000, "uncounted: instrumentation is off");
            start_instrumentation();
            zero_stats();
            assert_eq!(add(LOOP), 4_999_950_000);
            dump_stats_at(NAME);
            return;
        }
        let test = "callgrind::tests::instrumentation_starts_on_request";
        let Some(dump) = run_under_callgrind(test, &["--instr-atstart=no"]) else { return };
        let ir = crate::runner::parse_callgrind(&dump, LOOP, false).expect("a readable dump").ir_per_event;
        // Each addition is a few instructions once instrumented; without
        // the request the dump would count (nearly) nothing.
        assert!((2.0..1_000.0).contains(&ir), "{ir} Ir per addition (debug builds take ~100)");
    }

    /// Runs this test binary's `test` (its child branch) under callgrind
    /// with `options`, and returns the dump named [`NAME`]; `None` (the
    /// test skipped) where valgrind is not installed.
    fn run_under_callgrind(test: &str, options: &[&str]) -> Option<String> {
        if Command::new("valgrind").arg("--version").output().is_err() {
            eprintln!("skipped: valgrind is not installed (apt-get install valgrind)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("callgrind.out");
        let child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .args(options)
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(std::env::current_exe().expect("the test binary's path"))
            .args([test, "--exact", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("valgrind starts");
        assert!(
            child.status.success(),
            "the test under callgrind failed ({}):\n{}{}",
            child.status,
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        Some(named_dump(dir.path(), &NAME.to_string_lossy()).expect("callgrind wrote a dump with the name"))
    }

    /// The text of the dump in `dir` whose trigger is `name`.
    fn named_dump(dir: &Path, name: &str) -> Option<String> {
        let trigger = format!("Trigger: Client Request: {name}");
        std::fs::read_dir(dir)
            .expect("the temp dir lists")
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|text| text.contains(&trigger))
    }
}
