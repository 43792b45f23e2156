package etcdstore

import "go.uber.org/zap"

// nopLogger keeps the etcd client's internal zap logging off the user's terminal;
// errors reach callers as wrapped errors instead.
func nopLogger() *zap.Logger { return zap.NewNop() }
