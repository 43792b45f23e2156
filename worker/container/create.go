package container

import (
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
)

// FromInspect builds the Spec of a container from what docker inspect returned for it.
// Networks are sorted by name (the first one is the one it is recreated on).
func FromInspect(ci dcontainer.InspectResponse) Spec {
	s := Spec{}
	if ci.ContainerJSONBase != nil {
		s.Name = strings.TrimPrefix(ci.Name, "/")
		s.ImageID = ci.Image
	}
	if c := ci.Config; c != nil {
		s.Image, s.Entrypoint, s.Cmd, s.Env = c.Image, c.Entrypoint, c.Cmd, c.Env
		s.WorkingDir, s.User, s.Hostname, s.Tty, s.Labels = c.WorkingDir, c.User, c.Hostname, c.Tty, c.Labels
		s.StopSignal = c.StopSignal
		if c.StopTimeout != nil {
			v := *c.StopTimeout
			s.StopTimeout = &v
		}
		if h := c.Healthcheck; h != nil {
			s.Healthcheck = &Healthcheck{Test: slices.Clone(h.Test), Interval: int64(h.Interval), Timeout: int64(h.Timeout),
				StartPeriod: int64(h.StartPeriod), StartInterval: int64(h.StartInterval), Retries: h.Retries}
		}
		for p := range c.ExposedPorts {
			s.ExposedPorts = append(s.ExposedPorts, string(p))
		}
		sort.Strings(s.ExposedPorts)
	}
	s.Service, s.Task, s.Slot = SwarmFromLabels(s.Labels)
	if ci.ContainerJSONBase != nil {
		s.StorageDriver = ci.GraphDriver.Name
		if s.StorageDriver == "overlay2" {
			s.UpperDir = ci.GraphDriver.Data["UpperDir"]
		}
	}
	var hostMounts []mount.Mount
	if ci.ContainerJSONBase != nil && ci.HostConfig != nil {
		h := ci.HostConfig
		hostMounts = h.Mounts
		s.fromHostConfig(h)
	}
	for _, m := range ci.Mounts {
		if _, ok := s.Tmpfs[m.Destination]; ok {
			continue // a --tmpfs mount, recreated from Tmpfs
		}
		src := m.Source
		if m.Type == mount.TypeVolume {
			src = m.Name
		}
		mm := Mount{Type: string(m.Type), Source: src, Target: m.Destination, ReadOnly: !m.RW}
		if m.Type == mount.TypeVolume {
			mm.Driver = m.Driver
		}
		if m.Type == mount.TypeTmpfs {
			for _, hm := range hostMounts {
				if hm.Type == mount.TypeTmpfs && hm.Target == m.Destination && hm.TmpfsOptions != nil {
					mm.TmpfsSize, mm.TmpfsMode = hm.TmpfsOptions.SizeBytes, uint32(hm.TmpfsOptions.Mode)
				}
			}
		}
		s.Mounts = append(s.Mounts, mm)
	}
	if ci.NetworkSettings != nil {
		for name, ep := range ci.NetworkSettings.Networks {
			if ep == nil {
				continue
			}
			n := Network{Name: name, IPv4: ep.IPAddress, IPv6: ep.GlobalIPv6Address}
			for _, a := range ep.Aliases {
				// Docker adds the short container ID as an alias; it changes on recreate.
				if ci.ContainerJSONBase == nil || !strings.HasPrefix(ci.ID, a) {
					n.Aliases = append(n.Aliases, a)
				}
			}
			s.Networks = append(s.Networks, n)
		}
		// Map order is random; the first network is the one the container is created on.
		sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].Name < s.Networks[j].Name })
	}
	return s
}

func (s *Spec) fromHostConfig(h *dcontainer.HostConfig) {
	s.Init = h.Init != nil && *h.Init
	for port, bs := range h.PortBindings {
		for _, b := range bs {
			s.PortBindings = append(s.PortBindings, PortBinding{Port: string(port), HostIP: b.HostIP, HostPort: b.HostPort})
		}
	}
	sort.Slice(s.PortBindings, func(i, j int) bool {
		a, b := s.PortBindings[i], s.PortBindings[j]
		return a.Port+" "+a.HostIP+" "+a.HostPort < b.Port+" "+b.HostIP+" "+b.HostPort
	})
	r := h.Resources
	s.Memory, s.MemorySwap, s.MemoryReservation = r.Memory, r.MemorySwap, r.MemoryReservation
	s.NanoCPUs, s.CPUShares, s.CPUQuota, s.CPUPeriod, s.CpusetCpus = r.NanoCPUs, r.CPUShares, r.CPUQuota, r.CPUPeriod, r.CpusetCpus
	if r.PidsLimit != nil && *r.PidsLimit > 0 {
		s.PidsLimit = *r.PidsLimit
	}
	for _, u := range r.Ulimits {
		if u != nil {
			s.Ulimits = append(s.Ulimits, Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
		}
	}
	for _, d := range r.Devices {
		s.Devices = append(s.Devices, Device{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
	}
	s.CapAdd, s.CapDrop = slices.Clone([]string(h.CapAdd)), slices.Clone([]string(h.CapDrop))
	s.Privileged, s.ReadonlyRootfs = h.Privileged, h.ReadonlyRootfs
	s.Sysctls, s.Tmpfs = maps.Clone(h.Sysctls), maps.Clone(h.Tmpfs)
	s.ExtraHosts, s.SecurityOpt = slices.Clone(h.ExtraHosts), slices.Clone(h.SecurityOpt)
	s.ShmSize = h.ShmSize
	s.DNS, s.DNSSearch, s.DNSOptions = slices.Clone(h.DNS), slices.Clone(h.DNSSearch), slices.Clone(h.DNSOptions)
	s.GroupAdd, s.OomScoreAdj = slices.Clone(h.GroupAdd), h.OomScoreAdj
}

// CreateConfig is the docker create configuration that recreates the container of s
// with every recorded setting: image, command, environment, labels, mounts and the
// runtime settings (init, ports, resources, capabilities, ulimits, sysctls, hosts,
// read-only root, tmpfs, stop signal and timeout, security options, shm, devices, DNS,
// extra groups, OOM score, healthcheck).
// Networks, the runtime and labels of the restore's own are the caller's to add.
func (s Spec) CreateConfig() (*dcontainer.Config, *dcontainer.HostConfig) {
	cfg := &dcontainer.Config{
		Image: s.Image, Entrypoint: slices.Clone(s.Entrypoint), Cmd: slices.Clone(s.Cmd), Env: slices.Clone(s.Env),
		WorkingDir: s.WorkingDir, User: s.User, Hostname: s.Hostname, Tty: s.Tty,
		Labels: maps.Clone(s.Labels), StopSignal: s.StopSignal,
	}
	if s.StopTimeout != nil {
		v := *s.StopTimeout
		cfg.StopTimeout = &v
	}
	hc := &dcontainer.HostConfig{
		CapAdd: slices.Clone(s.CapAdd), CapDrop: slices.Clone(s.CapDrop),
		Privileged: s.Privileged, ReadonlyRootfs: s.ReadonlyRootfs,
		Sysctls: maps.Clone(s.Sysctls), Tmpfs: maps.Clone(s.Tmpfs),
		ExtraHosts: slices.Clone(s.ExtraHosts), SecurityOpt: slices.Clone(s.SecurityOpt),
		ShmSize: s.ShmSize,
		DNS:     slices.Clone(s.DNS), DNSSearch: slices.Clone(s.DNSSearch), DNSOptions: slices.Clone(s.DNSOptions),
		GroupAdd: slices.Clone(s.GroupAdd), OomScoreAdj: s.OomScoreAdj,
	}
	if h := s.Healthcheck; h != nil {
		cfg.Healthcheck = &dcontainer.HealthConfig{Test: slices.Clone(h.Test), Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout),
			StartPeriod: time.Duration(h.StartPeriod), StartInterval: time.Duration(h.StartInterval), Retries: h.Retries}
	}
	if s.Init {
		t := true
		hc.Init = &t
	}
	for _, p := range s.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = nat.PortSet{}
		}
		cfg.ExposedPorts[nat.Port(p)] = struct{}{}
	}
	for _, b := range s.PortBindings {
		if hc.PortBindings == nil {
			hc.PortBindings = nat.PortMap{}
		}
		p := nat.Port(b.Port)
		hc.PortBindings[p] = append(hc.PortBindings[p], nat.PortBinding{HostIP: b.HostIP, HostPort: b.HostPort})
	}
	r := &hc.Resources
	r.Memory, r.MemorySwap, r.MemoryReservation = s.Memory, s.MemorySwap, s.MemoryReservation
	r.NanoCPUs, r.CPUShares, r.CPUQuota, r.CPUPeriod, r.CpusetCpus = s.NanoCPUs, s.CPUShares, s.CPUQuota, s.CPUPeriod, s.CpusetCpus
	if s.PidsLimit > 0 {
		v := s.PidsLimit
		r.PidsLimit = &v
	}
	for _, u := range s.Ulimits {
		r.Ulimits = append(r.Ulimits, &dcontainer.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	for _, d := range s.Devices {
		r.Devices = append(r.Devices, dcontainer.DeviceMapping{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
	}
	for _, m := range s.Mounts {
		mm := mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type == string(mount.TypeTmpfs) && (m.TmpfsSize != 0 || m.TmpfsMode != 0) {
			mm.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: m.TmpfsSize, Mode: os.FileMode(m.TmpfsMode)}
		}
		hc.Mounts = append(hc.Mounts, mm)
	}
	return cfg, hc
}
