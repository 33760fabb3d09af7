//go:build !linux

package planner

func adviseHuge([]uint64) {}
