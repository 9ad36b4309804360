//! The `tinymoe` binary: run the CLI, print any error once as `tinymoe: error: …` with its
//! causes, and exit non-zero. No panics or backtraces on user input.

/// mimalloc instead of glibc's malloc: glibc returns every buffer over 128 KB to the OS on
/// free and page-faults it back in on the next step (measured: ~4 ms per 4 MB activation,
/// a third of a block-small step). mimalloc keeps freed pages for reuse.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `tinymoe inspect … | head`: when the reader goes away, println! panics with "failed
    // printing to stdout: Broken pipe". That is the reader's choice, not an error: stop quietly,
    // as a Unix tool does. Every other panic keeps the default report.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload.downcast_ref::<String>().map(String::as_str).or(payload.downcast_ref::<&str>().copied());
        if msg.is_some_and(|m| m.contains("Broken pipe")) {
            std::process::exit(0);
        }
        default_hook(info)
    }));
    if let Err(e) = tinymoe::cli::run() {
        eprintln!("tinymoe: error: {e:#}");
        std::process::exit(1);
    }
}
