package tcp

// State is a connection state of RFC 9293 §3.3.2.
type State uint8

// The eleven states.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
	numStates
)

var stateNames = [numStates]string{
	"CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
	"FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT",
}

// String returns the state's name as netstat and the RFC write it (SYN_RCVD, FIN_WAIT_1).
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "INVALID"
}

// IsValid reports whether s is one of the eleven states.
func (s State) IsValid() bool { return s < numStates }

// Synchronized reports whether the state is one of the synchronized states of
// RFC 9293 §3.5.2 (the handshake has completed on this side).
func (s State) Synchronized() bool { return s >= Established && s <= TimeWait }
