//! The `raptor` binary: the allocator, then the command line (`raptor_engine::cli`), which
//! runs the server or an operator command.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(raptor_engine::cli::main())
}
