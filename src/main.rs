//! The `tinymoe` binary: run the CLI, print any error once as `tinymoe: error: …` with its
//! causes, and exit non-zero. No panics or backtraces on user input.

fn main() {
    if let Err(e) = tinymoe::cli::run() {
        eprintln!("tinymoe: error: {e:#}");
        std::process::exit(1);
    }
}
