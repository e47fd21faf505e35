//! The `balancelab` command: the web app (`serve`) and headless training (`train`, `sweep`);
//! the commands live in [`cli`].

mod cli;

fn main() -> anyhow::Result<()> {
    balancelab::cpu_threads::limit_candle_spinning();
    balancelab::allocator::keep_freed_memory();
    tracing_subscriber::fmt()
        // Logs go to standard error: standard output carries what a command produces (the
        // training process's reports to its worker, a headless run's progress).
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "balancelab=info,tower_http=info".into()),
        )
        .init();
    cli::run()
}
