//! `enms`: the energy-management analytics server and its command-line tools.

mod agent;
mod bench;
mod cli;
mod client;
mod db;
mod export;
mod import;
mod logging;
mod remote;
mod serve;
mod settings;
mod stream;
mod summary;
mod token;
mod train;
mod user;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{BenchCommand, Cli, Command, ConfigCommand};

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
            Command::Serve(args) => serve::run(*args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Bench { command: BenchCommand::Ingest(args) } => bench::ingest::run(args).await,
            Command::Bench { command: BenchCommand::Fanout(args) } => bench::fanout::run(args).await,
            Command::Bench { command: BenchCommand::Detect(args) } => bench::detect::run(args).await,
            Command::Bench { command: BenchCommand::Notify(args) } => bench::notify::run(args).await,
            Command::Bench { command: BenchCommand::Mqtt(args) } => bench::mqtt::run(args).await,
            Command::Bench { command: BenchCommand::Scale(args) } => bench::scale::run(args).await,
            Command::Bench { command: BenchCommand::Host(args) } => bench::host::run(args).await,
            Command::Bench { command: BenchCommand::Forecast(args) } => bench::forecast::run(args).await,
            Command::Token { command } => token::run(command).await,
            Command::User { command } => user::run(command).await,
            Command::Db { command } => db::run(command).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Publish(args) => remote::publish(args).await,
            Command::Machines(args) => remote::machines(args).await,
            Command::Detect(args) => remote::detect(args).await,
            Command::Train(args) => train::run(args).await,
            Command::Config { command: ConfigCommand::Check { file } } => settings::check(&file),
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
