fn main() {
    std::process::exit(chipbench::cli::main());
}
