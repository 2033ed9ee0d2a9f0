//! `recorder-sim`: a simulated recorder on a pseudo-terminal (placeholder, see below).
fn main() {}
