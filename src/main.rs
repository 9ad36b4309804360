//! The `tinymoe` binary: run the CLI, print any error once as `tinymoe: error: …` with its
//! causes, and exit non-zero. No panics or backtraces on user input.

/// mimalloc instead of glibc's malloc: glibc returns every buffer over 128 KB to the OS on
/// free and page-faults it back in on the next step (measured: ~4 ms per 4 MB activation,
/// a third of a block-small step). mimalloc keeps freed pages for reuse.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = tinymoe::cli::run() {
        eprintln!("tinymoe: error: {e:#}");
        std::process::exit(1);
    }
}
