//! The `ferry` command: parses arguments, calls `ferry-store` and
//! `ferry-sync`, prints. No logic of its own beyond wording.

mod args;
mod commands;
mod error;
mod output;
mod passphrase;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let code = match commands::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            error::report(&e, cli.global.json);
            1
        }
    };
    std::process::exit(code);
}
