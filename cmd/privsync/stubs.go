package main

import "context"

func (m *Main) status(ctx context.Context, args []string) error { return usageErr("status: not yet") }
