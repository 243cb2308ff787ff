package engine

// Step is the batched call at the narrow waist: it processes every frame of
// in.Frames, then runs the timers due at in.Now, executes in.Commands in order,
// and fills out with the frames to send, one Result per command, the events, and
// the deadline. It is built on the fine-grained methods and equivalent to
// calling them in that order.
//
// Frames are written into the stack's own buffer (Config.OutputBuffer bytes at
// most; the rest stays queued and Deadline is Now). The stack uses two such
// buffers in turn, so a Step's frames stay valid through the next Step and until
// the one after it starts: a host may write one batch to its link while the next
// Step runs. Step does not retain in, and allocates nothing once out's slices
// and the stack's buffers have grown to the working size.
func (s *Stack) Step(in *Input, out *Output) {
	out.Frames = out.Frames[:0]
	out.Results = out.Results[:0]
	out.Events = out.Events[:0]

	// Frames before timers: a host that wakes late must not let a retransmission
	// timer fire for data that an ACK waiting in this very batch covers.
	for _, f := range in.Frames {
		s.HandleFrame(in.Now, f)
	}
	s.HandleTimeout(in.Now)
	for i := range in.Commands {
		out.Results = append(out.Results, s.Execute(in.Now, &in.Commands[i]))
	}

	arena := s.arenas[s.turn]
	if arena == nil {
		arena = make([]byte, s.cfg.OutputBuffer)
		s.arenas[s.turn] = arena
	}
	s.turn ^= 1
	off := 0
	for off+s.cfg.MTU <= len(arena) {
		// PollFrame uses MTU bytes of the rest, or up to 64 KiB with
		// Config.SegmentOffload.
		n := s.PollFrame(arena[off:])
		if n == 0 {
			break
		}
		out.Frames = append(out.Frames, arena[off:off+n:off+n])
		off += n
	}
	for {
		ev, ok := s.PollEvent()
		if !ok {
			break
		}
		out.Events = append(out.Events, ev)
	}
	out.Deadline = s.PollDeadline()
}

// Execute runs one command at time now and returns its result.
func (s *Stack) Execute(now Time, c *Command) Result {
	s.setNow(now)
	var r Result
	switch c.Op {
	case OpListen:
		r.Conn, r.Err = s.Listen(c.Addr, c.N)
		r.Local, r.Remote, _ = s.Addrs(r.Conn)
	case OpDial:
		r.Conn, r.Err = s.Dial(now, c.Local, c.Addr)
		r.Local, r.Remote, _ = s.Addrs(r.Conn)
	case OpAccept:
		r.Conn, r.Err = s.Accept(c.Conn)
		r.Local, r.Remote, _ = s.Addrs(r.Conn)
	case OpWrite:
		r.N, r.Err = s.Write(c.Conn, c.Data)
	case OpRead:
		r.N, r.Err = s.Read(c.Conn, c.Data)
	case OpShutdown:
		r.Err = s.Shutdown(c.Conn)
	case OpClose:
		r.Err = s.Close(c.Conn)
	case OpAbort:
		r.Err = s.Abort(c.Conn)
	case OpSetOption:
		r.Err = s.SetOption(c.Conn, c.Option, c.Value)
	default:
		r.Err = ErrInvalid
	}
	return r
}
