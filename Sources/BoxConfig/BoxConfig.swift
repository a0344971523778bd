// BoxConfig: the board profiles and the box configuration, read from TOML and validated completely,
// with every mistake reported by file, line and key. It must never touch hardware or the network: the
// layers above take these plain values and act on them.
