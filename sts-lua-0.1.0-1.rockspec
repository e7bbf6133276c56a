-- The sts module for plain Lua 5.4, built by the project's CMake with only
-- the module (STS_MODULE_ONLY): sts.so and the Lua modules sts.test, sts.cli,
-- ... From a checkout: luarocks --lua-version 5.4 make
-- The sts-lua host, its commands and man pages come with cmake --install or
-- the Debian package (scripts/package), not with the rock.
rockspec_format = "3.0"
package = "sts-lua"
version = "0.1.0-1"
source = {
   -- A release tarball made from the checkout:
   --   git archive --prefix=sts-lua-0.1.0/ -o sts-lua-0.1.0.tar.gz HEAD
   url = "sts-lua-0.1.0.tar.gz",
   dir = "sts-lua-0.1.0",
}
description = {
   summary = "End-to-end encrypted telemetry over MQTT brokers that are not trusted",
   detailed = [[
      The sts module: MQTT over libmosquitto on one poll() event loop, Noise
      sessions authenticated by pinned keys, encrypted groups through a key
      server and sealed one-way readings over mbedtls, and sts.test, which
      starts real mosquitto brokers and processes for busted specs.
   ]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   MOSQUITTO = { header = "mosquitto.h", library = "mosquitto" },
   MBEDTLS = { header = "mbedtls/ssl.h", library = "mbedtls" },
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      STS_MODULE_ONLY = "ON",
      STS_LUA_INSTALL_DIR = "$(LUADIR)",
      STS_CMOD_INSTALL_DIR = "$(LIBDIR)",
   },
}
