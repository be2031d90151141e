#ifndef SWITCHYARD_CLIBPQ_SHIM_H
#define SWITCHYARD_CLIBPQ_SHIM_H
#include <libpq-fe.h>
/* Waiting for connection sockets (non-blocking libpq). */
#include <sys/epoll.h>
#endif
