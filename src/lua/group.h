/* What the group binding files share: lgroup.c (a member) and lkeyserver.c
 * (the key server), both exposed through the module "sts.group.core" that
 * lua/sts/group.lua builds sts.group on. Private to src/lua. */
#ifndef STS_LUA_GROUP_H
#define STS_LUA_GROUP_H

#include "lua/session.h"
#include "mqtt/topic.h"
#include "proto/group_member.h"
#include "proto/group_server.h"

#define GROUP_MT "sts.group"
#define KEYSERVER_MT "sts.keyserver"

/* Each sets its constructor on the table at the top of the stack. */
void stsl_open_group_member(lua_State *L);
void stsl_open_group_server(lua_State *L);

#endif
