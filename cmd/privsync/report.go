package main

import "context"

// report is `privsync report verify|export`.
func (m *Main) report(ctx context.Context, args []string) error { return usageErr("report: not yet") }
