//! `podshim-bridge`: podshim's bridge networking as a CNI 1.1 plugin (see `podshim_cni::plugin`).

use std::io::{Read, Write};

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    if std::env::var_os("PODSHIM_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("PODSHIM_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let env = podshim_cni::plugin::Env::from_process();
    let mut stdin = Vec::new();
    // VERSION may come without a config; a closed or absent stdin is an empty one.
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let reply = podshim_cni::plugin::handle(&env, &stdin);
    std::io::stdout()
        .write_all(reply.stdout.as_bytes())
        .context("write reply to stdout")?;
    std::process::exit(reply.exit_code);
}
