//! The `whittle` binary: parses the command line, runs one subcommand, maps errors to exit codes.

mod cli;
mod commands;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// mimalloc instead of glibc's malloc: a run allocates each intermediate and frees it after its last
/// use, tens of small buffers per run, and glibc's free/consolidate paths took 5-10% of small
/// models' runs (perf). Measured alternating the two builds, one thread, p50: digits_cnn batch 8
/// 24.3 to 21.1 us, transformer_tiny batch 1 84 to 68 us and batch 8 288 to 273 us, digits_mlp
/// batch 1 5.0 to 3.8 us. It reserves more up front: a digits_cnn bench's peak resident memory went
/// from 8.9 to 13.4 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Compare(args) => commands::compare::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Fuse(args) => commands::fuse::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Output piped into `head` that closes early is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
