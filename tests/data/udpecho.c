/* A UDP echo server for the published-port tests (busybox has no UDP server):
   udpecho PORT answers every datagram with itself. Built static by the test. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
    for (;;) {
        char buf[1500]; struct sockaddr_in p; socklen_t l = sizeof p;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&p, &l);
        if (n < 0) continue;
        sendto(s, buf, n, 0, (struct sockaddr *)&p, l);
    }
}
