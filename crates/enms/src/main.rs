//! `enms`: the energy-management analytics server and its command-line tools.

mod bench;
mod cli;
mod client;
mod duration;
mod import;
mod logging;
mod serve;
mod settings;
mod token;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{BenchCommand, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Bench { command: BenchCommand::Ingest(args) } => bench::ingest::run(args).await,
            Command::Bench { command: BenchCommand::Fanout(args) } => bench::fanout::run(args).await,
            Command::Bench { command: BenchCommand::Detect(args) } => bench::detect::run(args).await,
            Command::Token { command } => token::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
