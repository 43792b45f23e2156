// Command mkthirdparty turns programs installed on this machine from Debian packages into
// `docker load`-able image archives (docker-save format: manifest.json, one config JSON,
// one layer tar), with no Docker daemon and no registry. It copies each named file (symlinks
// dereferenced) and, for dynamically linked ELF files, every shared library `ldd` lists and
// the dynamic loader, at the same paths; it writes a minimal /etc (passwd and group with
// root and the given users, nsswitch.conf) and a /tmp, and sets the entrypoint, command,
// user, working directory, environment and exposed ports of the image config. The output
// is deterministic for the same inputs (fixed timestamps, sorted entries).
//
//	mkthirdparty --tag swarmckpt-thirdparty/redis:deb --out build/thirdparty/redis.tar \
//	    --file /usr/bin/redis-server --file /usr/bin/redis-cli \
//	    --user redis:999:999 --run-as redis --dir /data:0750:redis \
//	    --workdir /data --entrypoint '["/usr/bin/redis-server"]' \
//	    --cmd '["--save","","--appendonly","no"]' --expose 6379/tcp
//
// Libraries a program opens with dlopen(3) are not seen by ldd; name them with --file.
package main
