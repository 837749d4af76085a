// sluice-io500: the IO500 benchmark for Sluice and any POSIX file system.
#include "tools/io500/cli.h"

int main(int argc, char** argv) { return sluice::io500::RunCli(argc, argv); }
