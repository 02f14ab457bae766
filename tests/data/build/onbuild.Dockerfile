FROM test/busybox:1
ONBUILD RUN echo triggered > /trig
ONBUILD ENV FROM_TRIGGER=1
