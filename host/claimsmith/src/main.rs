fn main() -> std::process::ExitCode {
    claimsmith::cli::main()
}
