#![no_std]
// The program lives in the binaries; this library exists so `synguard` can name the crate as a
// build dependency (the aya template's trick to get rebuilt when it changes).
