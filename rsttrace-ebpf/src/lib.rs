// Lets rsttrace/build.rs depend on this crate, so cargo rebuilds the
// programs when their sources change; the programs are in main.rs.
#![no_std]
