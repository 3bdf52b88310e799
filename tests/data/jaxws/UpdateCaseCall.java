// A JAX-WS RI client of UpdateCase, compiled against the classes that wsimport generates from wsdl/
// (package caf.updatecase). It sends one update built with the generated types and prints the result as
// key=value lines for tests/integration/test_jaxws_client.py: from the handling system (RECEIVED, ...) or
// from 1177 (CITIZEN_REPLY, SUPPLEMENT, with a TEXT). Mutual TLS comes from the javax.net.ssl.* system
// properties (PKCS#12 key store and trust store). Fictional data only.
//
// usage: UpdateCaseCall WSDL_FILE ENDPOINT_URL LOGICAL_ADDRESS CASE_ID MESSAGE_ID SEQUENCE UPDATE_TYPE [TEXT]
import caf.updatecase.MessageType;
import caf.updatecase.ResultType;
import caf.updatecase.UpdateCaseResponderInterface;
import caf.updatecase.UpdateCaseResponderService;
import caf.updatecase.UpdateCaseResponseType;
import caf.updatecase.UpdateCaseType;
import caf.updatecase.UpdateTypeEnum;
import java.io.File;
import java.math.BigInteger;
import java.util.Map;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.soap.SOAPFaultException;

public final class UpdateCaseCall {
    private UpdateCaseCall() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 7 && args.length != 8) {
            System.err.println("usage: UpdateCaseCall WSDL_FILE ENDPOINT_URL LOGICAL_ADDRESS CASE_ID MESSAGE_ID "
                + "SEQUENCE UPDATE_TYPE [TEXT]");
            System.exit(2);
        }
        UpdateCaseResponderService service = new UpdateCaseResponderService(new File(args[0]).toURI().toURL());
        UpdateCaseResponderInterface port = service.getUpdateCaseResponderPort();
        Map<String, Object> context = ((BindingProvider) port).getRequestContext();
        context.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, args[1]);
        context.put("com.sun.xml.ws.connect.timeout", 10000);
        context.put("com.sun.xml.ws.request.timeout", 20000);

        UpdateCaseType update = new UpdateCaseType();
        update.setCaseId(args[3]);
        update.setMessageId(args[4]);
        update.setSequenceNumber(new BigInteger(args[5]));
        update.setUpdateType(UpdateTypeEnum.fromValue(args[6]));
        update.setCreatedAt("20261126101500");
        if (args.length == 8) {
            MessageType message = new MessageType();
            message.setText(args[7]);
            update.setMessage(message);
        }

        UpdateCaseResponseType response;
        try {
            response = port.updateCase(args[2], update);
        } catch (SOAPFaultException fault) {
            // a fault is an answer too: the test reads it (RIV-TA faults carry a platform code, e.g. VP007)
            System.out.println("faultCode=" + fault.getFault().getFaultCodeAsQName().getLocalPart());
            System.out.println("faultString=" + fault.getFault().getFaultString());
            return;
        }
        ResultType result = response.getResult();
        System.out.println("resultCode=" + result.getResultCode().value());
        System.out.println("errorCode=" + (result.getErrorCode() == null ? "" : result.getErrorCode().value()));
        System.out.println("subCode=" + (result.getSubCode() == null ? "" : result.getSubCode()));
        System.out.println("logId=" + result.getLogId());
    }
}
