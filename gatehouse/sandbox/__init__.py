"""The offline sandbox: moto and API emulators on loopback, driven through the real handlers."""
