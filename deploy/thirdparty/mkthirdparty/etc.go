package main

import (
	"fmt"
	"strconv"
	"strings"
)

// User is an account of the image: a line in /etc/passwd and its group in /etc/group.
type User struct {
	Name string
	UID  int
	GID  int
	Home string // default /nonexistent
}

// parseUser reads NAME:UID:GID[:HOME].
func parseUser(s string) (User, error) {
	f := strings.Split(s, ":")
	if len(f) < 3 || len(f) > 4 || f[0] == "" {
		return User{}, fmt.Errorf("%w: user %q, want NAME:UID:GID[:HOME]", ErrSpec, s)
	}
	uid, err1 := strconv.Atoi(f[1])
	gid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return User{}, fmt.Errorf("%w: user %q: uid and gid must be numbers", ErrSpec, s)
	}
	u := User{Name: f[0], UID: uid, GID: gid, Home: "/nonexistent"}
	if len(f) == 4 && f[3] != "" {
		u.Home = f[3]
	}
	return u, nil
}

// etcFiles returns /etc/passwd, /etc/group and /etc/nsswitch.conf for root plus users
// (root is always uid 0; a user named root is refused), in that order.
func etcFiles(users []User) ([]Entry, error) {
	passwd := []string{"root:x:0:0:root:/root:/bin/sh"}
	group := []string{"root:x:0:"}
	names := map[string]bool{"root": true}
	gids := map[int]bool{0: true}
	for _, u := range users {
		if names[u.Name] {
			return nil, fmt.Errorf("%w: user %s given twice (root is always present)", ErrSpec, u.Name)
		}
		names[u.Name] = true
		passwd = append(passwd, fmt.Sprintf("%s:x:%d:%d::%s:/usr/sbin/nologin", u.Name, u.UID, u.GID, u.Home))
		if !gids[u.GID] {
			gids[u.GID] = true
			group = append(group, fmt.Sprintf("%s:x:%d:", u.Name, u.GID))
		}
	}
	nss := "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nservices: files\n"
	return []Entry{
		{Path: "/etc/passwd", Kind: File, Mode: 0o644, Content: []byte(strings.Join(passwd, "\n") + "\n")},
		{Path: "/etc/group", Kind: File, Mode: 0o644, Content: []byte(strings.Join(group, "\n") + "\n")},
		{Path: "/etc/nsswitch.conf", Kind: File, Mode: 0o644, Content: []byte(nss)},
	}, nil
}

// ownerOf resolves NAME or UID[:GID] against users (and root).
func ownerOf(s string, users []User) (uid, gid int, err error) {
	if s == "" || s == "root" || s == "0" {
		return 0, 0, nil
	}
	for _, u := range users {
		if u.Name == s {
			return u.UID, u.GID, nil
		}
	}
	a, b, hasG := strings.Cut(s, ":")
	uid, err = strconv.Atoi(a)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: owner %q is neither a --user name nor UID[:GID]", ErrSpec, s)
	}
	gid = uid
	if hasG {
		if gid, err = strconv.Atoi(b); err != nil {
			return 0, 0, fmt.Errorf("%w: owner %q: gid is not a number", ErrSpec, s)
		}
	}
	return uid, gid, nil
}
