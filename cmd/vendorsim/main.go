// Command vendorsim serves the SFMC, Batch.com and Bloomreach simulators on
// one address, with the control API under /_sim/ (see package
// executor/vendorsim), for demos and load tests. Run it with --help for the
// flags; the credentials it insists on come only from the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "vendorsim:", err)
		os.Exit(1)
	}
}
