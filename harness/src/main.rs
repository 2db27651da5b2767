//! `buslab`: the command-line front door of the benchmark lab.
//!
//! Errors are `anyhow` at this edge and printed with `{:#}` (the whole
//! context chain); `main` returns an [`ExitCode`].
//!
//! # Dependencies and why
//! - `clap` (derive): subcommands and flags with generated `--help`.
//! - `anyhow`: context-carrying errors at the binary's edge.
//! - `serde_json`: `--json` output.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

#[allow(dead_code, reason = "commands not yet wired into clap")]
mod export;
mod list;
#[allow(dead_code, reason = "commands not yet wired into clap")]
mod store;

/// buslab: a benchmark and performance-regression lab for in-process event buses.
#[derive(Parser, Debug)]
#[command(name = "buslab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every bus with its declared capabilities and guarantees.
    List {
        /// Print a JSON array of objects instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("buslab: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::List { json } => {
            let buses = buslab_impls::all();
            if json {
                serde_json::to_writer_pretty(&mut out, &buses).context("writing JSON")?;
                writeln!(out)?;
            } else {
                list::write_text(&mut out, &buses, terminal_width())?;
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The terminal's width from `COLUMNS`, or 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(100)
}
